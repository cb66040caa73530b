"""The ``unifaas`` command line: argument parsing and readable errors, work done elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import commands
from gateway.client import default_url
from unikernel.settings import VMSettings
from wasm_runtime.bundle import pack_directory
from wasm_runtime.errors import UnifaasError
from wasm_runtime.types import MIB, Invocation, Limits


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def tar_directory(directory: Path) -> bytes:
    """A files bundle from a directory given on the command line."""
    if not directory.is_dir():
        raise SystemExit(f"unifaas: error: --files {directory} is not a directory")
    return pack_directory(directory)


def cmd_image_build(args: argparse.Namespace, settings: VMSettings) -> int:
    from unikernel.image import ensure_image

    image = ensure_image(settings.cache_dir, _progress)
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


def cmd_bench_sandbox(args: argparse.Namespace, settings: VMSettings) -> int:
    from unikernel.bench import bench_sandbox, default_echo_wasm

    echo = Path(args.wasm).read_bytes() if args.wasm else default_echo_wasm()
    result = asyncio.run(bench_sandbox(settings, echo, args.boots, args.calls, _progress))
    _print_result(result, args.json)
    return 0


def cmd_bench_platform(args: argparse.Namespace, settings: VMSettings) -> int:
    from gateway.bench import bench_platform
    from gateway.report import comparison_table
    from unikernel.bench import default_echo_wasm

    echo = Path(args.wasm).read_bytes() if args.wasm else default_echo_wasm()
    result = bench_platform(echo, args.calls, args.concurrency, args.starts, _progress)
    if args.json:
        print(json.dumps(result))
    else:
        print(comparison_table(result))
    return 0


def _print_result(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


async def _run_once(args: argparse.Namespace, settings: VMSettings) -> int:
    from unikernel.accel import resolve_accel
    from unikernel.image import ensure_image
    from unikernel.vm import MicroVM
    from wasm_runtime.engine import precompile

    try:
        wasm = Path(args.module).read_bytes()
    except OSError as err:
        raise SystemExit(f"unifaas: error: cannot read {args.module}: {err.strerror}") from err
    artifact = precompile(wasm)
    files = tar_directory(Path(args.files)) if args.files else None
    image = ensure_image(settings.cache_dir, _progress)
    accel = await resolve_accel(settings, image)
    _progress(f"booting a microVM ({accel})")
    async with await MicroVM.boot(image, settings, accel, name="run") as vm:
        _progress(f"agent ready in {vm.boot_s:.2f}s")
        await vm.load("fn", artifact, files=files)
        limits = Limits(timeout_ms=int(args.timeout * 1000), memory_bytes=args.memory * MIB)
        invocation = Invocation(
            stdin=commands.read_data(args.data),
            args=tuple(args.arg),
            env=tuple(args.env),
            limits=limits,
        )
        result = await vm.invoke("fn", invocation)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    if not result.ok:
        _progress(f"unifaas: function failed: {result.outcome.value}: {result.message}")
    return result.exit_code


def cmd_run(args: argparse.Namespace, settings: VMSettings) -> int:
    return asyncio.run(_run_once(args, settings))


def cmd_up(args: argparse.Namespace, settings: VMSettings) -> int:
    from gateway.settings import GatewaySettings
    from gateway.up import serve
    from scheduler.settings import SchedulerSettings

    def given(**values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    gateway = GatewaySettings(**given(host=args.host, port=args.port))
    node = SchedulerSettings(
        **given(state_dir=args.state_dir, redis_url=args.redis, max_vms=args.max_vms)
    )
    asyncio.run(serve(gateway, node, settings))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unifaas",
        description="WebAssembly functions, each in its own unikernel-style QEMU microVM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    image = sub.add_parser("image", help="build or inspect the guest image")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    build = image_sub.add_parser(
        "build", help="build the kernel and agent initramfs (cached by content hash)"
    )
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(func=cmd_image_build)

    bench = sub.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="SUITE")
    sandbox = bench_sub.add_parser(
        "sandbox", help="boot time, protocol round trip, invoke latency and memory of a microVM"
    )
    sandbox.add_argument("--json", action="store_true", help="print one JSON object")
    sandbox.add_argument("--boots", type=int, default=5, help="boots to take the median of")
    sandbox.add_argument("--calls", type=int, default=200, help="pings and invocations to time")
    sandbox.add_argument("--wasm", help="function to time instead of the echo example")
    sandbox.set_defaults(func=cmd_bench_sandbox)
    platform = bench_sub.add_parser(
        "platform",
        help="echo over HTTP through the platform vs an in-process baseline, start kinds",
    )
    platform.add_argument("--json", action="store_true", help="print one JSON object")
    platform.add_argument("--calls", type=int, default=300, help="requests per measurement")
    platform.add_argument("--concurrency", type=int, default=16)
    platform.add_argument("--starts", type=int, default=3, help="forced starts of each kind")
    platform.add_argument("--wasm", help="module to use instead of the echo example")
    platform.set_defaults(func=cmd_bench_platform)

    run = sub.add_parser(
        "run",
        help="run a .wasm once in a fresh microVM and print its output",
        description="Boot a microVM, load FILE.wasm, invoke it once, print its stdout and "
        "stderr, and exit with its exit code.",
    )
    run.add_argument("module", metavar="FILE.wasm", help="a WASI preview1 command module")
    run.add_argument("--data", metavar="TEXT|@FILE|-", help="stdin for the function")
    run.add_argument("--arg", action="append", default=[], help="argument (repeatable)")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=_env_pair,
        metavar="K=V",
        help="environment variable (repeatable)",
    )
    run.add_argument("--files", metavar="DIR", help="directory preopened at / (writable copy)")
    run.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="wall-clock limit in seconds (default 10)",
    )
    run.add_argument(
        "--memory",
        type=int,
        default=64,
        metavar="MiB",
        help="linear-memory cap in MiB (default 64)",
    )
    run.set_defaults(func=cmd_run)

    def remote(
        name: str, help_text: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description or help_text)
        p.add_argument(
            "--url",
            default=default_url(),
            help="platform URL (default $UNIFAAS_URL or http://127.0.0.1:8080)",
        )
        p.add_argument("--state-dir", help="where to find the token (default: as for `up`)")
        return p

    up = sub.add_parser(
        "up",
        help="run the platform (gateway + scheduler + microVM pool) in the foreground",
        description="Start one node: the HTTP gateway, the scheduler and its warm pool of "
        "microVMs. Without --redis it starts a private redis-server that keeps its data in "
        "the state dir. Stop with Ctrl-C or SIGTERM: every VM it started is stopped.",
    )
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8080)")
    up.add_argument(
        "--state-dir",
        help="token, Redis data and logs (default $UNIFAAS_STATE_DIR or ~/.local/state/unifaas)",
    )
    up.add_argument("--redis", metavar="URL", help="use this Redis instead of a private one")
    up.add_argument("--max-vms", type=int, help="microVMs this node may run (default 8)")
    up.set_defaults(func=cmd_up)

    deploy = remote("deploy", "deploy a .wasm as a new version of a function")
    deploy.add_argument("name", help="function name: lowercase letters, digits, dashes")
    deploy.add_argument("module", metavar="FILE.wasm", help="a WASI preview1 command module")
    deploy.add_argument(
        "--env",
        action="append",
        default=[],
        type=_env_pair,
        metavar="K=V",
        help="environment variable (repeatable)",
    )
    deploy.add_argument("--arg", action="append", default=[], help="argument (repeatable)")
    deploy.add_argument("--files", metavar="DIR", help="directory preopened at / in every call")
    deploy.add_argument(
        "--abi",
        choices=["raw", "wagi"],
        default="raw",
        help="raw: body->stdin, stdout->body (default); wagi: CGI mapping",
    )
    deploy.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="wall-clock limit per call (default 10)",
    )
    deploy.add_argument(
        "--memory",
        type=int,
        default=64,
        metavar="MiB",
        help="linear-memory cap per call (default 64)",
    )
    deploy.add_argument(
        "--min-warm",
        type=int,
        default=0,
        metavar="N",
        help="VMs kept loaded even when idle (default 0: scale to zero)",
    )
    deploy.add_argument(
        "--max-vms",
        type=int,
        default=4,
        metavar="N",
        help="most VMs this function may use at once (default 4)",
    )
    deploy.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="calls in flight per VM (default 4)"
    )
    deploy.add_argument(
        "--keep-alive",
        type=float,
        default=120.0,
        metavar="S",
        help="idle seconds before an extra VM is reclaimed (default 120)",
    )
    deploy.add_argument("--private", action="store_true", help="invoking needs the bearer token")
    deploy.add_argument("--json", action="store_true", help="print the new version as JSON")
    deploy.set_defaults(func=lambda a, s: commands.cmd_deploy(a, tar_directory))

    inv = remote(
        "invoke",
        "call a function; its stdout to stdout, stderr to stderr",
        "Call a function over HTTP. Prints the response body, writes the function's "
        "stderr to stderr, and exits with the function's exit code.",
    )
    inv.add_argument("name")
    inv.add_argument("--data", metavar="TEXT|@FILE|-", help="request body")
    inv.add_argument("--path", help="path after /fn/NAME (for wagi routing)")
    inv.add_argument("--method", help="HTTP method (default POST with --data, else GET)")
    inv.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="request header (repeatable)",
    )
    inv.set_defaults(func=lambda a, s: commands.cmd_invoke(a))

    lst = remote("list", "list functions")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=lambda a, s: commands.cmd_list(a))

    desc = remote("describe", "versions, config and warm VMs of a function")
    desc.add_argument("name")
    desc.add_argument("--json", action="store_true")
    desc.set_defaults(func=lambda a, s: commands.cmd_describe(a))

    logs = remote("logs", "recent invocations of a function")
    logs.add_argument("name")
    logs.add_argument("--invocation", metavar="ID", help="show one invocation in full")
    logs.add_argument("--limit", type=int, default=20)
    logs.add_argument("--json", action="store_true")
    logs.set_defaults(func=lambda a, s: commands.cmd_logs(a))

    delete = remote("delete", "delete a function and all its versions")
    delete.add_argument("name")
    delete.set_defaults(func=lambda a, s: commands.cmd_delete(a))

    rb = remote("rollback", "make an earlier version current")
    rb.add_argument("name")
    rb.add_argument("--to", type=int, metavar="VERSION", help="default: the previous version")
    rb.set_defaults(func=lambda a, s: commands.cmd_rollback(a))

    st = remote("status", "nodes, pool by state, warm VMs per function")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=lambda a, s: commands.cmd_status(a))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = VMSettings()
        code: int = args.func(args, settings)
        return code
    except UnifaasError as err:
        print(f"unifaas: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
