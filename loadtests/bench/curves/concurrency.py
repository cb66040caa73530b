"""Warm p50/p99 and calls/s against concurrency (1, 2, 4, ... 64), on one function and with
the same load spread round-robin over 10 and 100 functions, each with its VM warm; the
baseline (the same module in-process behind FastAPI, no VM) at the same concurrencies."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from functions import wat_module
from loadtests.bench.curves.drive import Progress, client, closed_loop, deploy, platform, sequential
from loadtests.bench.curves.model import Curve, Panel, Series
from loadtests.errors import BenchError
from loadtests.launch import free_port, serving

# Room for the autoscaler above one VM of 4 slots per function.
VM_ROOM = 24
KEEP_ALIVE_S = 3.0


async def _settled(c: httpx.AsyncClient, vms: int) -> None:
    """Until the pool is back to one VM per function (the autoscaler's extras reclaimed)."""
    for _ in range(600):
        if (await c.get("/v1/status")).json()["pool"]["vms"] <= vms:
            return
        await asyncio.sleep(0.1)
    raise BenchError(f"the pool did not settle back to {vms} VMs within 60 s")


async def concurrency_curve(
    root: Path,
    levels: list[int],
    spreads: list[int],
    duration_s: float,
    warm_calls: int,
    progress: Progress,
) -> Curve:
    wasm = wat_module("echo")
    p50 = {k: Series(f"{k} function{'s' if k > 1 else ''}") for k in spreads}
    p99 = {k: Series(p50[k].label) for k in spreads}
    rps = {k: Series(p50[k].label) for k in spreads}
    base = [Series("baseline", baseline=True) for _ in range(3)]
    curve = Curve(
        "concurrency",
        "Warm calls against concurrency",
        "concurrent clients",
        [
            Panel("p50 (ms)", [*p50.values(), base[0]], log_y=True),
            Panel("p99 (ms)", [*p99.values(), base[1]], log_y=True),
            Panel("calls/s", [*rps.values(), base[2]]),
        ],
        log_x=True,
    )
    with platform(root / "concurrency", max_vms=max(spreads) + VM_ROOM) as (served, token):
        async with client(served.url, token) as c:
            names: list[str] = []
            for k in spreads:
                # Only the functions of this spread are deployed, each with its VM: the
                # others' idle VMs would tax this spread's calls (TCG guests tick).
                progress(f"concurrency: deploying functions up to {k} and warming each")
                while len(names) < k:
                    name = f"echo-{len(names)}"
                    names.append(name)
                    # One VM each kept warm; what the autoscaler adds under one level's
                    # load goes after KEEP_ALIVE_S, before the next spread is measured.
                    await deploy(
                        c, name, wasm, min_warm=1, keep_alive_s=KEEP_ALIVE_S, concurrency=4
                    )
                    # Each QEMU translates the guest's code as it first runs it: calls get
                    # faster over the first few dozen.
                    await sequential(c, f"/fn/{name}", warm_calls)
                await _settled(c, len(names))
                paths = [f"/fn/{name}" for name in names[:k]]
                for n in levels:
                    point = await closed_loop(c, paths, n, duration_s)
                    progress(f"concurrency: {k} functions, {n} clients: {point}")
                    curve.points.append({"functions": k, "clients": n, **point})
                    p50[k].add(n, point["p50_ms"])
                    p99[k].add(n, point["p99_ms"])
                    rps[k].add(n, point["calls_per_s"])
    module = root / "echo.wasm"
    module.write_bytes(wasm)
    port = free_port()
    argv = [sys.executable, "-m", "loadtests.bench.baseline", str(module), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with serving(argv, url, dict(os.environ), root / "baseline.log"):
        async with client(url) as c:
            await sequential(c, "/fn/echo", warm_calls)
            for n in levels:
                point = await closed_loop(c, ["/fn/echo"], n, duration_s)
                progress(f"concurrency: baseline, {n} clients: {point}")
                curve.points.append({"baseline": True, "clients": n, **point})
                base[0].add(n, point["p50_ms"])
                base[1].add(n, point["p99_ms"])
                base[2].add(n, point["calls_per_s"])
    return curve
