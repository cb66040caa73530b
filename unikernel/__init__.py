"""The sandbox layer: guest image, QEMU microVM lifecycle, QMP control and the shim."""
