"""A function's developer tools: ``unifaas new`` (templates), ``unifaas build`` (a manifest's
build command, with its toolchain) and ``unifaas toolchain`` (installing one).

It drives the CLI's manifest (:mod:`gateway.cli.manifest`) and nothing of the platform:
a developer's machine needs no VM to scaffold and build.
"""
