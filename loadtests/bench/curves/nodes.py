"""Calls/s against the number of nodes of the local cluster (a redis-server, N nodes, one
gateway; each node one warm VM of echo), with the CPU per call by process (the gateway,
the nodes, their QEMUs), from loadtests.bench.cluster. One node is the reference: on a
2-core host more nodes share the same cores, so the curve shows what each extra node and
the gateway's hop cost here; hosts with cores to spare get the scaling."""

from __future__ import annotations

from loadtests.bench.cluster import arm
from loadtests.bench.curves.drive import Progress
from loadtests.bench.curves.model import Curve, Panel, Series

CPU_GROUPS = ("gateway", "nodes", "qemu")


def nodes_curve(levels: list[int], clients: int, duration_s: float, progress: Progress) -> Curve:
    rps = Series("calls/s through one gateway")
    p50, p99 = Series("p50"), Series("p99")
    cpu = {g: Series(g) for g in CPU_GROUPS}
    curve = Curve(
        "nodes",
        f"Calls/s against nodes ({clients} clients through one gateway)",
        "nodes",
        [
            Panel("calls/s", [rps]),
            Panel("latency (ms)", [p50, p99]),
            Panel("CPU per call (ms)", list(cpu.values())),
        ],
    )
    for n in levels:
        point = arm(n, clients, duration_s, progress)
        progress(f"nodes: {n}: {point}")
        curve.points.append({"nodes": n, **point})
        rps.add(n, point["calls_per_s"])
        p50.add(n, point["p50_ms"])
        p99.add(n, point["p99_ms"])
        for g in CPU_GROUPS:
            cpu[g].add(n, point[f"cpu_ms_per_call_{g}"])
    return curve
