"""The client side every curve uses: deploys, closed-loop load, timed requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.stats import percentile
from loadtests.chaos import answer_kind
from loadtests.errors import BenchError
from loadtests.launch import Served, platform_process

Progress = Callable[[str], None]
PAYLOAD = b"x" * 64
# A bench client holds one connection per client it drives.
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=256)


@contextlib.contextmanager
def platform(state: Path, *, max_vms: int, idle_target: int = 0) -> Iterator[tuple[Served, str]]:
    """``unifaas up`` with its own state dir; (the server, its token)."""
    state.mkdir(parents=True, exist_ok=True)
    env = {"UNIFAAS_IDLE_TARGET": str(idle_target), "UNIFAAS_MAX_DEPLOY_BYTES": str(256 << 20)}
    with platform_process(state, max_vms=max_vms, extra_env=env) as served:
        yield served, (state / "token").read_text().strip()


@contextlib.asynccontextmanager
async def client(url: str, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=LIMITS) as c:
        yield c


async def deploy(c: httpx.AsyncClient, name: str, wasm: bytes, **config: Any) -> float:
    """Deploy ``name``; the seconds the deploy took."""
    started = time.perf_counter()
    r = await c.post(
        f"/v1/functions/{name}",
        files={"module": ("m.wasm", wasm)},
        data={"config": json.dumps(config)},
    )
    if r.status_code != 201:
        raise BenchError(f"deploy of {name} failed: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - started


async def call(c: httpx.AsyncClient, path: str, body: bytes = PAYLOAD) -> httpx.Response:
    r = await c.post(path, content=body)
    if r.status_code != 200 or r.content != body:
        raise BenchError(f"bad answer from {path}: {r.status_code} {r.text[:200]}")
    return r


async def timed(c: httpx.AsyncClient, method: str, path: str, n: int) -> float:
    """The median milliseconds of ``n`` requests (each must succeed)."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        r = await c.request(method, path)
        out.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise BenchError(f"{method} {path}: {r.status_code} {r.text[:200]}")
    return percentile(out, 50)


async def sequential(c: httpx.AsyncClient, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call(c, path)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def closed_loop(
    c: httpx.AsyncClient, paths: list[str], concurrency: int, duration_s: float
) -> dict[str, Any]:
    """``concurrency`` clients, each calling the next of ``paths`` as soon as it has its
    answer, for ``duration_s``: calls/s, p50/p99 ms and the calls that failed."""
    latencies: list[float] = []
    failed: Counter[str] = Counter()
    starts: Counter[str] = Counter()  # X-Start of the answered calls: warm, cold, ...
    deadline = time.perf_counter() + duration_s

    async def worker(n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            try:
                r = await c.post(path, content=PAYLOAD)
                kind = "" if r.status_code == 200 and r.content == PAYLOAD else answer_kind(r)
            except httpx.HTTPError as err:
                kind = f"transport: {type(err).__name__}"
            if kind:
                failed[kind] += 1
            else:
                latencies.append((time.perf_counter() - started) * 1000)
                starts[r.headers.get("x-start", "")] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "calls_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        "calls": len(latencies),
        "failed": sum(failed.values()),
        "failed_by_kind": dict(failed),
        "starts": dict(starts),
    }
