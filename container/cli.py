"""``unifaas image container``: build the platform's container image.

Registered into the ``unifaas`` command line through the ``unifaas.commands`` entry
point, so the CLI's own package (gateway) does not import this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from wasm_runtime.cliargs import Commands, progress


def cmd_container(args: argparse.Namespace) -> int:
    from container.build import build

    result = build(force=args.force, progress=progress)
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))
    else:
        state = "already built" if result.cached else f"built in {result.seconds:.0f} s"
        print(f"{result.tag}  ({result.size_bytes / 1e6:.0f} MB, {state}; also unifaas:latest)")
    return 0


def register(cli: Commands) -> None:
    container = cli.command(
        "container",
        "build the platform's container image (one image for Redis, nodes and gateways)",
        "Build the image unifaas:<content key> (also tagged unifaas:latest) from this "
        "checkout, offline: a Debian root by debootstrap, the project and its dependencies "
        "at the versions installed here, the guest kernel and initramfs baked in. Needs "
        "root and a Docker daemon (scripts/dockerd.sh start). A second build of the same "
        "inputs only tags. Run the cluster from it with deploy/compose.yaml.",
        group="image",
    )
    container.add_argument("--force", action="store_true", help="build even if it exists")
    container.add_argument("--json", action="store_true", help="print the result as JSON")
    container.set_defaults(func=cmd_container)
