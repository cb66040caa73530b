"""The platform as a container image: one image, built offline from this repository, for
every role (Redis, node, gateway), and the cluster run from it in real containers.

``unifaas container build`` (``make container``) builds it: a debootstrap root of Debian's
packages, the project and its dependencies installed in a venv, and the guest kernel and
initramfs baked in, so a node starts without building anything. ``stack`` starts the
compose file's cluster for tests and campaigns. It imports the unikernel layer (to bake the
guest) and nothing above it.
"""
