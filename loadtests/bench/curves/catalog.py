"""What the number of deployed functions, and of one function's versions, costs: at 1, 10,
100 and 1000, a warm call's p50 and the node's CPU per call, and the latency of the
requests that read the whole catalog (status, the function list's first page, metrics,
the dashboard's data) or the whole function (describe). The baseline: the same readings
with one function of one version, taken first in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions import wat_module
from loadtests.bench.cluster import TICK_S
from loadtests.bench.curves.drive import Progress, client, deploy, platform, sequential, timed
from loadtests.bench.curves.model import Curve, Panel, Series
from loadtests.bench.stats import cpu_ticks, percentile

CALLS = 300  # warm calls per level: a few hundred ms of node CPU, in 10 ms ticks
READS = 10  # of each catalog request per level
CALLED = "fn-0"
READS_BY_NAME = {
    "status": ("GET", "/v1/status"),
    "list": ("GET", "/v1/functions"),
    "metrics": ("GET", "/metrics"),
    "dashboard": ("GET", "/dashboard/data"),
    "describe": ("GET", f"/v1/functions/{CALLED}"),
}


async def _level(c: Any, pid: int) -> dict[str, Any]:
    await sequential(c, f"/fn/{CALLED}", 20)
    before = cpu_ticks(pid)
    warm = await sequential(c, f"/fn/{CALLED}", CALLS)
    cpu_ms = (cpu_ticks(pid) - before) * TICK_S * 1000 / CALLS
    point: dict[str, Any] = {
        "warm_p50_ms": round(percentile(warm, 50), 2),
        "node_cpu_ms_per_call": round(cpu_ms, 3),
    }
    for label, (method, path) in READS_BY_NAME.items():
        point[f"{label}_ms"] = round(await timed(c, method, path, READS), 2)
    return point


async def catalog_curve(root: Path, levels: list[int], progress: Progress) -> Curve:
    wasm = wat_module("echo")
    kinds = ("functions", "versions")
    warm = {k: Series(f"{k} deployed") for k in kinds}
    cpu = {k: Series(f"{k} deployed") for k in kinds}
    reads = {(k, r): Series(f"{r}, {k}") for k in kinds for r in READS_BY_NAME}
    curve = Curve(
        "catalog",
        "Cost against deployed functions and versions",
        "functions (or versions of one function) deployed",
        [
            Panel("warm call p50 (ms)", list(warm.values())),
            Panel("node CPU per call (ms)", list(cpu.values())),
            Panel("request p50 (ms)", list(reads.values()), log_y=True),
        ],
        log_x=True,
    )
    for kind in kinds:
        with platform(root / f"catalog-{kind}", max_vms=4) as (served, token):
            async with client(served.url, token) as c:
                deployed = 0
                for level in levels:
                    progress(f"catalog: {level} {kind} (deploying {level - deployed} more)")
                    while deployed < level:
                        name = f"fn-{deployed}" if kind == "functions" else CALLED
                        await deploy(c, name, wasm, keep_alive_s=3600)
                        deployed += 1
                    point = await _level(c, served.proc.pid)
                    progress(f"catalog: {level} {kind}: {point}")
                    curve.points.append({"kind": kind, "deployed": level, **point})
                    warm[kind].add(level, point["warm_p50_ms"])
                    cpu[kind].add(level, point["node_cpu_ms_per_call"])
                    for r in READS_BY_NAME:
                        reads[kind, r].add(level, point[f"{r}_ms"])
    return curve
