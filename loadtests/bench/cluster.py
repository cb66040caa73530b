"""Calls/s through a gateway over one node vs over three, in one run, and where the CPU goes.

Each arm starts a local cluster (a redis-server, NODES nodes, one gateway; loadtests.cluster),
deploys echo with one warm VM per node, and drives CLIENTS clients through the gateway for
DURATION seconds. Over the measured window it reads the CPU time of the gateway, of the
node processes and of their QEMUs, so the report says where a call's time is spent. On a
2-core host three nodes cannot be faster than one: the ratio shows what the extra hop and
processes cost there, and real hosts get the scaling.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtests.bench.stats import cpu_ticks, percentile
from loadtests.chaos import load, qemu_children
from loadtests.cluster import deploy_echo_everywhere, local_cluster

Progress = Callable[[str], None]
WARMUP_S = 3.0
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def arm(nodes: int, clients: int, duration_s: float, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-cluster-") as tmp:
        extra = {"UNIFAAS_IDLE_TARGET": "0", "UNIFAAS_AUTOSCALE": "0"}
        progress(f"{nodes} node(s): starting")
        with local_cluster(Path(tmp), nodes=nodes, gateways=1, max_vms=2, extra_env=extra) as c:
            deploy_echo_everywhere(c, concurrency=4)
            gateway = c.gateways[0].proc.pid
            node_pids = [n.proc.pid for n in c.nodes]
            with load([c.gateways[0].url], c.token, clients) as tally:
                time.sleep(WARMUP_S)
                groups = {
                    "gateway": [gateway],
                    "nodes": node_pids,
                    "qemu": [q for pid in node_pids for q in qemu_children(pid)],
                }
                before = {k: sum(map(cpu_ticks, pids)) for k, pids in groups.items()}
                with tally.lock:
                    sent_before = tally.sent
                started = time.perf_counter()
                time.sleep(duration_s)
                elapsed = time.perf_counter() - started
                with tally.lock:
                    sent = tally.sent - sent_before
                    window = [ms for t, ms in tally.latencies if t >= started]
                used = {k: sum(map(cpu_ticks, pids)) - before[k] for k, pids in groups.items()}
            failed = sum(tally.failed.values())
    calls = max(1, sent)
    return {
        "calls_per_s": round(sent / elapsed, 1),
        "p50_ms": round(percentile(window, 50), 2) if window else None,
        "p99_ms": round(percentile(window, 99), 2) if window else None,
        "failed": failed,
        # CPU per call, by where it was spent (ms of CPU time).
        **{f"cpu_ms_per_call_{k}": round(v * TICK_S * 1000 / calls, 3) for k, v in used.items()},
    }


def bench_cluster(clients: int, duration_s: float, progress: Progress) -> dict[str, Any]:
    one = arm(1, clients, duration_s, progress)
    three = arm(3, clients, duration_s, progress)
    result: dict[str, Any] = {"clients": clients, "duration_s": duration_s, "cores": os.cpu_count()}
    for key, value in one.items():
        result[f"one_node_{key}"] = value
    for key, value in three.items():
        result[f"three_nodes_{key}"] = value
    result["three_vs_one_calls_per_s"] = round(
        three["calls_per_s"] / max(one["calls_per_s"], 1e-9), 2
    )
    return result
