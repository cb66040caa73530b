"""The ``unifaas bench`` suites (sandbox, platform, density, ...), registered into the CLI
through the ``unifaas.commands`` entry point."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from functions import wat_module
from wasm_runtime.cliargs import Commands, progress, read_file
from wasm_runtime.errors import UsageError


def _module(args: argparse.Namespace) -> bytes:
    return read_file(args.wasm) if args.wasm else wat_module("echo")


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def cmd_bench_sandbox(args: argparse.Namespace) -> int:
    from loadtests.bench.sandbox import bench_sandbox
    from unikernel.settings import VMSettings

    result = asyncio.run(
        bench_sandbox(VMSettings(), _module(args), args.boots, args.calls, progress)
    )
    _print(result, args.json)
    return 0


def cmd_bench_hostcalls(args: argparse.Namespace) -> int:
    from loadtests.bench.hostcalls import bench_hostcalls
    from unikernel.settings import VMSettings

    _print(asyncio.run(bench_hostcalls(VMSettings(), args.calls, progress)), args.json)
    return 0


def cmd_bench_runner(args: argparse.Namespace) -> int:
    from loadtests.bench.runner import bench_runner

    _print(bench_runner(args.calls), args.json)
    return 0


def cmd_bench_platform(args: argparse.Namespace) -> int:
    from loadtests.bench.platform import bench_platform
    from loadtests.bench.report import comparison_table

    result = bench_platform(_module(args), args.calls, args.concurrency, args.starts, progress)
    print(json.dumps(result) if args.json else comparison_table(result))
    return 0


def cmd_bench_component(args: argparse.Namespace) -> int:
    from loadtests.bench.component import bench_component

    _print(bench_component(args.calls, args.starts, progress), args.json)
    return 0


def cmd_bench_burst(args: argparse.Namespace) -> int:
    from loadtests.bench.burst import bench_burst

    _print(bench_burst(_module(args), args.clients, args.duration, progress), args.json)
    return 0


def cmd_bench_density(args: argparse.Namespace) -> int:
    from loadtests.bench.density import bench_density

    result = bench_density(_module(args), args.vms, args.settle, args.window, progress)
    _print(result, args.json)
    return 0


def cmd_bench_cluster(args: argparse.Namespace) -> int:
    from loadtests.bench.cluster import bench_cluster

    _print(bench_cluster(args.clients, args.duration, progress), args.json)
    return 0


def cmd_bench_curves(args: argparse.Namespace) -> int:
    from loadtests.bench.curves import CURVES, bench_curves, redraw

    if args.redraw:
        redraw(Path(args.out), progress)
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else []
    unknown = [name for name in only if name not in CURVES]
    if unknown:
        raise UsageError(f"no curve {', '.join(unknown)}; there are {', '.join(CURVES)}")
    report = bench_curves(only, Path(args.out), args.quick, progress)
    print(json.dumps(report) if args.json else f"curves: {args.out}/curves.json and the PNGs")
    return 0


def cmd_bench_chaos(args: argparse.Namespace) -> int:
    from loadtests.chaos import Faults, chaos

    faults = Faults(
        kills=args.kills,
        freezes=args.freezes,
        redis_kills=args.redis_kills,
        template_deletions=args.template_deletions,
        double_kills=args.double_kills,
        kills_in_freeze=args.kills_in_freeze,
        redis_with_kills=args.redis_with_kills,
    )
    report = chaos(faults, args.clients, args.duration, progress)
    print(json.dumps(report.to_json(), indent=None if args.json else 2))
    return 0 if report.lost == 0 and report.deployed_after else 1


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from loadtests.soak import Schedule, soak, table

    schedule = Schedule(
        duration_s=args.duration * 60,
        window_s=args.window * 60,
        churn_every_s=args.churn_every,
        kill_every_s=args.kill_every,
    )
    report = soak(args.target, schedule, progress)
    print(json.dumps(report.to_json()) if args.json else table(report))
    return 0 if report.lost == 0 else 1


def cmd_bench_templates(args: argparse.Namespace) -> int:
    from loadtests.bench.templates import bench_templates, table

    result = bench_templates(args.calls, args.template or None, progress)
    print(json.dumps(result) if args.json else table(result))
    return 0


def register(cli: Commands) -> None:
    sandbox = cli.command(
        "sandbox",
        "boot time, protocol round trip, invoke latency and memory of a microVM",
        "Boot microVMs (and snapshot clones) on this host and time them against "
        "baselines measured in the same run: the do-nothing floor boot, the same "
        "module run in-process.",
        group="bench",
    )
    sandbox.add_argument("--json", action="store_true", help="print one JSON object")
    sandbox.add_argument("--boots", type=int, default=5, help="boots to take the median of")
    sandbox.add_argument("--calls", type=int, default=200, help="pings and invocations to time")
    sandbox.add_argument("--wasm", help="function to time instead of the echo example")
    sandbox.set_defaults(func=cmd_bench_sandbox)

    hostcalls = cli.command(
        "hostcalls",
        "key-value and outbound HTTP hostcalls through the VM wall vs from the host",
        "Time a microVM's calls making 10 hostcalls of one kind (kv_get, kv_set, http to a "
        "local server) against one making none, and the same operations made by the host "
        "directly, in one run with a private redis-server; prints per-hostcall ms and ratios.",
        group="bench",
    )
    hostcalls.add_argument("--json", action="store_true", help="print one JSON object")
    hostcalls.add_argument("--calls", type=int, default=30, help="timed calls per kind")
    hostcalls.set_defaults(func=cmd_bench_hostcalls)

    component = cli.command(
        "component",
        "wasi:http components (a WAT echo, Python by componentize-py) through the platform",
        "Deploy echo (a raw module), http-echo and hello-py (components) into unifaas up; time "
        "warm calls split by Server-Timing into the run in the VM and what the platform adds; "
        "then the components' runs in-process (the baseline), all in one run.",
        group="bench",
    )
    component.add_argument("--json", action="store_true", help="print one JSON object")
    component.add_argument("--calls", type=int, default=100, help="timed warm calls each")
    component.add_argument("--starts", type=int, default=3, help="forced starts of each kind")
    component.set_defaults(func=cmd_bench_component)

    templates = cli.command(
        "templates",
        "each template of unifaas new to its first answer, then its warm p50",
        "In one unifaas up: for each template, time new, build, deploy and the first call "
        "(toolchains installed beforehand), the module's size, and warm p50 against the wat "
        "template's (the baseline, the same run).",
        group="bench",
    )
    templates.add_argument("--json", action="store_true", help="print one JSON object")
    templates.add_argument("--calls", type=int, default=50, help="timed warm calls each")
    templates.add_argument(
        "--template", action="append", help="only this one (repeatable; default all)"
    )
    templates.set_defaults(func=cmd_bench_templates)

    runner = cli.command(
        "runner",
        "one call natively through the runner vs the bare wasmtime sequence it wraps",
        "Time FunctionRuntime.invoke of echo (and of a function with a files bundle) "
        "against a bare new Store + WasiConfig + instantiate + _start, interleaved in "
        "one run; no VM.",
        group="bench",
    )
    runner.add_argument("--json", action="store_true", help="print one JSON object")
    runner.add_argument("--calls", type=int, default=2000, help="calls per arm")
    runner.set_defaults(func=cmd_bench_runner)

    platform = cli.command(
        "platform",
        "echo over HTTP through the platform vs an in-process baseline, start kinds",
        "Start `unifaas up` and an in-process FastAPI+wasmtime baseline as child "
        "processes and drive both with the same client, alternating in 5 rounds (each "
        "round's ratios are reported too): warm p50/p99, requests/s, forced pre-warmed "
        "and cold starts.",
        group="bench",
    )
    platform.add_argument("--json", action="store_true", help="print one JSON object")
    platform.add_argument("--calls", type=int, default=300, help="requests per measurement")
    platform.add_argument("--concurrency", type=int, default=16, help="for throughput")
    platform.add_argument("--starts", type=int, default=3, help="forced starts of each kind")
    platform.add_argument("--wasm", help="module to use instead of the echo example")
    platform.set_defaults(func=cmd_bench_platform)

    burst = cli.command(
        "burst",
        "0 -> N concurrent clients on a function with no VM: first-second p99, time to steady",
        "Start `unifaas up` with no idle VM, deploy echo, and let CLIENTS clients call it "
        "back to back for DURATION seconds. Prints the p99 of the calls sent in the first "
        "second, the steady p99 (last third), the seconds until every later second's p99 "
        "stays within 1.5x of it, the VMs at the end and the autoscaler's scale-ups.",
        group="bench",
    )
    burst.add_argument("--json", action="store_true", help="print one JSON object")
    burst.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    burst.add_argument(
        "--duration", type=float, default=20.0, metavar="S", help="seconds (default 20)"
    )
    burst.add_argument("--wasm", help="module to use instead of the echo example")
    burst.set_defaults(func=cmd_bench_burst)

    density = cli.command(
        "density",
        "warm bound VMs this host holds, PSS and idle CPU per VM",
        "Start `unifaas up` allowed VMS microVMs, deploy VMS copies of echo with one warm "
        "VM each and wait until they are bound or memory admission stops adding VMs; then, "
        "all idle, read each QEMU's PSS, private memory and CPU over WINDOW seconds. The "
        "baseline is the old rule (every VM at its cgroup ceiling) on the same reading. "
        "Takes ~1 s per VM to fill under TCG.",
        group="bench",
    )
    density.add_argument("--json", action="store_true", help="print one JSON object")
    density.add_argument("--vms", type=int, default=300, help="VMs wanted (default 300)")
    density.add_argument(
        "--settle", type=float, default=10.0, metavar="S", help="idle seconds before measuring"
    )
    density.add_argument(
        "--window", type=float, default=20.0, metavar="S", help="CPU measuring window (s)"
    )
    density.add_argument("--wasm", help="module to use instead of the echo example")
    density.set_defaults(func=cmd_bench_density)

    cluster = cli.command(
        "cluster",
        "calls/s through a gateway over 1 node vs 3, and the CPU per call by process",
        "Start a local cluster twice (a redis-server, one gateway, and 1 then 3 nodes), "
        "deploy echo with a warm VM per node, drive CLIENTS clients through the gateway for "
        "DURATION seconds each, and print calls/s, p50/p99 and the CPU time per call of the "
        "gateway, the nodes and their QEMUs, with the 3-vs-1 ratio.",
        group="bench",
    )
    cluster.add_argument("--json", action="store_true", help="print one JSON object")
    cluster.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    cluster.add_argument(
        "--duration", type=float, default=15.0, metavar="S", help="seconds per arm (default 15)"
    )
    cluster.set_defaults(func=cmd_bench_cluster)

    curves = cli.command(
        "curves",
        "how cost grows: module size, concurrency, functions and versions, nodes; JSON + PNGs",
        "Measure each curve on platforms of its own, started as child processes: deploy "
        "time, cold and template starts and an idle VM's PSS against module size (10 KB to "
        "100 MiB, and the examples); warm p50/p99 and calls/s against 1..64 clients on 1, 10 "
        "and 100 functions; a warm call, the node's CPU per call and the catalog requests "
        "(status, list, metrics, dashboard, describe) against 1..1000 functions and versions; "
        "calls/s and CPU per call against 1..3 nodes. Each has its baseline from the same run. "
        "Writes OUT/curves.json and OUT/NAME.png (the README shows docs/curves/). The full "
        "set takes about ten minutes on 2 cores.",
        group="bench",
    )
    curves.add_argument(
        "--only", metavar="NAMES", help="comma-separated: size, concurrency, catalog, nodes"
    )
    curves.add_argument("--out", default="docs/curves", help="where to write (default docs/curves)")
    curves.add_argument(
        "--quick", action="store_true", help="two or three points per curve (what the tests run)"
    )
    curves.add_argument("--json", action="store_true", help="print the report as one JSON line")
    curves.add_argument(
        "--redraw", action="store_true", help="only draw OUT/*.png again from OUT/curves.json"
    )
    curves.set_defaults(func=cmd_bench_curves)

    chaos = cli.command(
        "chaos",
        "fault campaign: clients call echo while serving VMs are killed; counts what is lost",
        "Start `unifaas up` as a child process, deploy echo with two warm VMs, drive "
        "CLIENTS clients posting unique bodies for DURATION seconds while KILLS serving "
        "QEMUs are killed with SIGKILL and FREEZES frozen with SIGSTOP for longer than the "
        "function's timeout, and REDIS_KILLS kill the embedded redis-server, then faults "
        "that overlap in one call's life (DOUBLE_KILLS: a QEMU killed and, 0.3 s later, the "
        "newest one, where its calls run again; KILLS_IN_FREEZE: a QEMU killed while another "
        "is frozen; REDIS_WITH_KILLS: redis-server and a QEMU killed together), evenly "
        "spaced, and print one JSON report (sent, answered, retried, retried twice, failed "
        "by kind, lost, p50/p99). Exits 1 when anything was lost.",
        group="bench",
    )
    chaos.add_argument("--json", action="store_true", help="one line of JSON")
    chaos.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    chaos.add_argument(
        "--duration", type=float, default=45.0, metavar="S", help="seconds (default 45)"
    )
    chaos.add_argument("--kills", type=int, default=3, help="serving VMs killed (default 3)")
    chaos.add_argument(
        "--freezes",
        type=int,
        default=1,
        help="serving VMs frozen (SIGSTOP) past the function's timeout (default 1)",
    )
    chaos.add_argument(
        "--redis-kills", type=int, default=1, help="kills of the embedded redis-server (default 1)"
    )
    chaos.add_argument(
        "--template-deletions",
        type=int,
        default=1,
        help="deletions of the snapshot template's RAM file (default 1)",
    )
    for flag, what in (
        ("--double-kills", "two QEMUs killed 0.3 s apart, the second the newest"),
        ("--kills-in-freeze", "a QEMU killed while another is frozen"),
        ("--redis-with-kills", "the redis-server and a QEMU killed together"),
    ):
        chaos.add_argument(flag, type=int, default=1, help=f"{what} (default 1)")
    chaos.set_defaults(func=cmd_bench_chaos)

    soak = cli.command(
        "soak",
        "a long steady mixed load with deploys, rollbacks and VM kills; per-window resources",
        "Start `unifaas up` (or the local cluster: Redis, three nodes, two gateways) as child "
        "processes and drive sync calls of an echo, hostcalls (a key-value counter) and async "
        "calls for DURATION minutes, while the echo gets a new version and a rollback every "
        "CHURN_EVERY seconds and a serving QEMU is killed every KILL_EVERY seconds. Every "
        "WINDOW minutes it prints a row: calls, lost, async calls, p50/p99, the node "
        "processes' RSS and open descriptors, QEMUs and Redis's used memory; at the end the "
        "slope of each per hour. Exits 1 when anything was lost.",
        group="bench",
    )
    soak.add_argument("--target", choices=("up", "cluster"), default="up", help="default up")
    soak.add_argument("--duration", type=float, default=60, metavar="MIN", help="default 60")
    soak.add_argument("--window", type=float, default=5, metavar="MIN", help="default 5")
    soak.add_argument("--churn-every", type=float, default=60, metavar="S", help="default 60")
    soak.add_argument("--kill-every", type=float, default=120, metavar="S", help="default 120")
    soak.add_argument("--json", action="store_true", help="the report as one line of JSON")
    soak.set_defaults(func=cmd_bench_soak)
