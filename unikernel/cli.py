"""``unifaas image build`` and ``unifaas run``: commands that drive a sandbox on this host.

Registered into the ``unifaas`` command line through the ``unifaas.commands``
entry point, so the CLI's own package (gateway) does not import this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from unikernel.settings import VMSettings
from wasm_runtime.cliargs import Commands, env_pair, files_bundle, progress, read_data, read_file
from wasm_runtime.types import MIB, HttpRequest, Invocation, Limits

# Defaults of ``run``: the default limits of a call.
RUN_TIMEOUT_S = Limits().timeout_ms / 1000
RUN_MEMORY_MIB = Limits().memory_bytes // MIB


def cmd_image_build(args: argparse.Namespace) -> int:
    from unikernel.image import guest_image

    image = guest_image(VMSettings(), progress)
    kernel_bytes = image.kernel.stat().st_size
    if args.json:
        info = {
            "key": image.key,
            "kernel": str(image.kernel),
            "kernel_bytes": kernel_bytes,
            "initrd": str(image.initrd),
            "initrd_bytes": image.initrd_bytes,
        }
        print(json.dumps(info))
    else:
        print(f"kernel  {image.kernel}  ({kernel_bytes / 1e6:.1f} MB)")
        print(f"initrd  {image.initrd}  ({image.initrd_bytes / 1e6:.1f} MB)")
    return 0


async def _run_once(args: argparse.Namespace) -> int:
    from unikernel.accel import resolve_accel
    from unikernel.image import guest_image
    from unikernel.vm import MicroVM
    from wasm_runtime.engine import is_component, precompile

    settings = VMSettings()
    wasm = read_file(args.module)
    artifact = precompile(wasm)
    files = files_bundle(args.files) if args.files else None
    image = guest_image(settings, progress)
    accel = await resolve_accel(settings, image)
    progress(f"booting a microVM ({accel})")
    async with await MicroVM.boot(image, settings, accel, name="run") as vm:
        progress(f"agent ready in {vm.boot_s:.2f}s")
        await vm.load("fn", artifact, files=files)
        limits = Limits(timeout_ms=int(args.timeout * 1000), memory_bytes=args.memory * MIB)
        data = read_data(args.data)
        # A component gets the data as the body of a request to /, POST when there is one.
        request = (
            HttpRequest("POST" if data else "GET", "/", body=data) if is_component(wasm) else None
        )
        invocation = Invocation(
            stdin=b"" if request else data,
            args=tuple(args.arg),
            env=tuple(args.env),
            limits=limits,
            request=request,
        )
        result = await vm.invoke("fn", invocation)
    if result.response is not None:
        progress(f"HTTP {result.response.status} {result.response.error}".rstrip())
        for name, value in result.response.headers:
            progress(f"{name}: {value}")
        sys.stdout.buffer.write(result.response.body)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    if not result.ok:
        progress(f"unifaas: function failed: {result.outcome.value}: {result.message}")
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run_once(args))


def register(cli: Commands) -> None:
    build = cli.command(
        "build", "build the kernel and agent initramfs (cached by content hash)", group="image"
    )
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(func=cmd_image_build)

    run = cli.command(
        "run",
        "run a .wasm once in a fresh microVM and print its output",
        "Boot a microVM, load FILE.wasm, invoke it once, print its stdout and "
        "stderr, and exit with its exit code. No platform needed.",
    )
    run.add_argument(
        "module",
        metavar="FILE.wasm",
        help="a WASI preview1 command module, or a wasi:http component (its response's status "
        "and headers go to stderr, its body to stdout, then its logs)",
    )
    run.add_argument(
        "--data",
        metavar="TEXT|@FILE|-",
        help="stdin for a module; the body of a POST / for a component",
    )
    run.add_argument("--arg", action="append", default=[], help="argument (repeatable)")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=env_pair,
        metavar="K=V",
        help="environment variable (repeatable)",
    )
    run.add_argument("--files", metavar="DIR", help="directory preopened at / (writable copy)")
    run.add_argument(
        "--timeout",
        type=float,
        default=RUN_TIMEOUT_S,
        metavar="S",
        help=f"wall-clock limit in seconds (default {RUN_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--memory",
        type=int,
        default=RUN_MEMORY_MIB,
        metavar="MiB",
        help=f"linear-memory cap in MiB (default {RUN_MEMORY_MIB})",
    )
    run.set_defaults(func=cmd_run)
