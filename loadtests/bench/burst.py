"""``unifaas bench burst``: 0 -> N concurrent clients on a function with no VM.

Reports the p99 of the responses to calls sent in the first second, the p99 once steady,
and how long the platform took to get there: the first second from which every later
one-second bucket's p99 stays within ``STEADY_TOLERANCE`` of the steady p99 (taken over
the last third of the run). Also the VMs the function had at the end and how often the
autoscaler asked for more.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.stats import percentile
from loadtests.errors import BenchError
from loadtests.launch import platform_process

Progress = Callable[[str], None]
PAYLOAD = b"x" * 64
STEADY_TOLERANCE = 1.5
Sample = tuple[float, float]  # (sent, seconds after the burst began; latency ms)


def time_to_steady_s(samples: list[Sample], duration_s: float) -> tuple[float, float]:
    """(steady p99 ms, seconds until the per-second p99 stays within tolerance of it)."""
    tail = [ms for sent, ms in samples if sent >= duration_s * 2 / 3]
    if not tail:
        raise BenchError("no call was answered in the last third of the burst")
    steady = percentile(tail, 99)
    buckets: dict[int, list[float]] = {}
    for sent, ms in samples:
        buckets.setdefault(int(sent), []).append(ms)
    settled = 0
    for second in sorted(buckets):
        if percentile(buckets[second], 99) > STEADY_TOLERANCE * steady:
            settled = second + 1
    return steady, float(settled)


async def _drive(url: str, clients: int, duration_s: float) -> list[Sample]:
    samples: list[Sample] = []
    began = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        while (sent := time.perf_counter() - began) < duration_s:
            r = await http.post("/fn/burst", content=PAYLOAD)
            if r.status_code != 200:
                raise BenchError(f"bad response {r.status_code}: {r.text[:200]}")
            samples.append((sent, (time.perf_counter() - began - sent) * 1000))

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return samples


async def _run(wasm: bytes, clients: int, duration_s: float, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="unifaas-burst-") as tmp:
        progress("platform: starting (idle target 0, so the function starts with no VM)")
        extra = {"UNIFAAS_IDLE_TARGET": "0"}
        with platform_process(Path(tmp) / "state", extra_env=extra) as served:
            token = (Path(tmp) / "state" / "token").read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=served.url, headers=auth, timeout=120) as c:
                r = await c.post("/v1/functions/burst", files={"module": ("m.wasm", wasm)})
                r.raise_for_status()
                progress(f"burst: 0 -> {clients} clients for {duration_s:g} s")
                samples = await _drive(served.url, clients, duration_s)
                status = (await c.get("/v1/status")).json()
                metrics = (await c.get("/metrics")).text
    steady, settled = time_to_steady_s(samples, duration_s)
    first = [ms for sent, ms in samples if sent < 1.0]
    return {
        "clients": clients,
        "duration_s": duration_s,
        "calls": len(samples),
        "first_second_p99_ms": round(percentile(first, 99), 1) if first else None,
        "steady_p99_ms": round(steady, 1),
        "time_to_steady_s": settled,
        "vms_at_end": sum(f["vms"] for f in status["pool"]["functions"].values()),
        "autoscaler_scale_ups": _metric(metrics, "unifaas_autoscaler_scale_ups_total"),
    }


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def bench_burst(
    wasm: bytes, clients: int = 32, duration_s: float = 20.0, progress: Progress = print
) -> dict[str, Any]:
    return asyncio.run(_run(wasm, clients, duration_s, progress))
