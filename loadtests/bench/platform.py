"""``unifaas bench platform``: the echo function over HTTP through the platform vs a baseline.

Both servers run as their own processes on this machine at the same time and are driven
by the same client in alternating rounds, so machine noise hits both alike; each round's
ratios are reported too. Start kinds are
forced: a fresh version with a generic idle VM ready gives a pre-warmed start;
a platform with no idle target gives cold starts: a version's first from the
generic template, its later ones (after its VM was reclaimed) from its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.stats import percentile
from loadtests.errors import BenchError
from loadtests.launch import free_port, platform_process, serving

Progress = Callable[[str], None]

PAYLOAD = b"x" * 64
START_DEADLINE_S = 180.0


@contextlib.contextmanager
def _platform(state: Path, idle_target: int) -> Iterator[tuple[str, str]]:
    state.mkdir(exist_ok=True)
    # Room for the VMs the autoscaler adds under the throughput run and for a generic
    # VM beside them (the top-up never evicts).
    env = {"UNIFAAS_IDLE_TARGET": str(idle_target)}
    with platform_process(state, max_vms=16, extra_env=env) as p:
        yield p.url, (state / "token").read_text().strip()


def server_timing(header: str, name: str) -> float | None:
    """One metric's ``dur`` from a ``Server-Timing`` header (None when it is not there)."""
    for metric in header.split(","):
        key, *params = (part.strip() for part in metric.split(";"))
        if key == name:
            for param in params:
                if param.startswith("dur="):
                    return float(param[4:])
    return None


async def _sequential(
    client: httpx.AsyncClient,
    path: str,
    n: int,
    vm_ms: list[float] | None = None,
    platform_ms: list[float] | None = None,
) -> list[float]:
    """Client-side milliseconds per call; with ``vm_ms`` and ``platform_ms``, also the VM's
    share of each and the platform's (Server-Timing)."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        r = await client.post(path, content=PAYLOAD)
        out.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200 or r.content != PAYLOAD:
            raise BenchError(f"bad response {r.status_code}: {r.text[:200]}")
        if vm_ms is not None:
            vm = server_timing(r.headers.get("server-timing", ""), "vm")
            if vm is None:
                raise BenchError("the platform's answer has no Server-Timing vm metric")
            vm_ms.append(vm)
        if platform_ms is not None:
            platform_ms.append(server_timing(r.headers.get("server-timing", ""), "platform") or 0)
    return out


async def _throughput(client: httpx.AsyncClient, path: str, n: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            r = await client.post(path, content=PAYLOAD)
            if r.status_code != 200:
                raise BenchError(f"bad response {r.status_code}: {r.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


# The warm and throughput measurements alternate between the platform and the baseline in
# this many rounds: on this machine the speed of the same code drifts by 30 % within a
# minute, so measuring one side after the other moved the ratios more than any change did.
ROUNDS = 5


@dataclasses.dataclass
class _Rounds:
    warm: list[float] = dataclasses.field(default_factory=list)  # ms per platform call
    vm: list[float] = dataclasses.field(default_factory=list)
    in_platform: list[float] = dataclasses.field(default_factory=list)
    base: list[float] = dataclasses.field(default_factory=list)  # ms per baseline call
    warm_ratios: list[float] = dataclasses.field(default_factory=list)  # p50 / p50, per round
    rps_ratios: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    calls: int = 0  # at concurrency, per side
    table: list[dict[str, float]] = dataclasses.field(default_factory=list)  # per round

    @property
    def rps(self) -> float:
        return self.calls / self.seconds[0]

    @property
    def baseline_rps(self) -> float:
        return self.calls / self.seconds[1]


async def _rounds(
    platform: httpx.AsyncClient,
    baseline: httpx.AsyncClient,
    calls: int,
    concurrency: int,
    progress: Progress,
) -> _Rounds:
    out = _Rounds()
    per = max(1, calls // ROUNDS)
    for _ in range(ROUNDS):
        warm = await _sequential(platform, "/fn/echo", per, out.vm, out.in_platform)
        base = await _sequential(baseline, "/fn/echo", per)
        out.warm += warm
        out.base += base
        out.warm_ratios.append(statistics.median(warm) / statistics.median(base))
        rps = await _throughput(platform, "/fn/echo", calls, concurrency)
        baseline_rps = await _throughput(baseline, "/fn/echo", calls, concurrency)
        out.seconds[0] += calls / rps
        out.seconds[1] += calls / baseline_rps
        out.calls += calls
        out.rps_ratios.append(rps / baseline_rps)
        out.table.append(
            {
                "warm_p50_ms": round(statistics.median(warm), 2),
                "baseline_p50_ms": round(statistics.median(base), 2),
                "rps": round(rps, 1),
                "baseline_rps": round(baseline_rps, 1),
            }
        )
        progress(f"round {len(out.table)}: {out.table[-1]}")
    return out


async def _deploy(
    client: httpx.AsyncClient, name: str, wasm: bytes, config: str = '{"concurrency": 8}'
) -> None:
    r = await client.post(
        f"/v1/functions/{name}", files={"module": ("m.wasm", wasm)}, data={"config": config}
    )
    r.raise_for_status()


async def until_templated(
    client: httpx.AsyncClient, key: str, templates: int, timeout_s: float = 60.0
) -> int:
    """Wait until ``templates`` version templates are held and ``key`` has no VM left;
    returns the pool's count of VMs started preloaded so far."""
    for _ in range(round(timeout_s / 0.1)):
        pool = (await client.get("/v1/status")).json()["pool"]
        if pool["templates"] >= templates and key not in pool["functions"]:
            return int(pool["preloaded"])
        await asyncio.sleep(0.1)
    raise BenchError(f"no template of {key}, or its VM was not reclaimed, within {timeout_s:g} s")


async def _wait_idle(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        pool = (await client.get("/v1/status")).json()["pool"]
        if pool["idle"] >= 1:
            return
        await asyncio.sleep(0.1)
    raise BenchError(f"no generic idle VM appeared within 30 s; the pool: {pool}")


async def _timed_start(client: httpx.AsyncClient, path: str, want: str) -> float:
    started = time.perf_counter()
    r = await client.post(path, content=PAYLOAD)
    elapsed = (time.perf_counter() - started) * 1000
    if r.headers.get("x-start") != want:
        raise BenchError(f"wanted a {want} start, got {r.headers.get('x-start')}")
    return elapsed


async def _run(
    wasm: bytes, calls: int, concurrency: int, starts: int, progress: Progress
) -> dict[str, Any]:
    result: dict[str, Any] = {"calls": calls, "concurrency": concurrency}
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-") as tmp:
        root = Path(tmp)
        module = root / "echo.wasm"
        module.write_bytes(wasm)
        progress("platform (idle target 1) and baseline: starting both")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "loadtests.bench.baseline", str(module), "--port", str(port)]
        with (
            _platform(root / "a", idle_target=1) as (url, token),
            serving(argv, base_url, dict(os.environ), root / "baseline.log"),
        ):
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c,
                httpx.AsyncClient(base_url=base_url, timeout=120) as b,
            ):
                await _deploy(c, "echo", wasm)
                for client in (c, b):  # warm up: bind a VM, translate code, scale out
                    await _sequential(client, "/fn/echo", 20)
                    await _throughput(client, "/fn/echo", 2 * concurrency, concurrency)
                progress(
                    f"platform and baseline, {ROUNDS} rounds each way: {calls // ROUNDS} "
                    f"sequential warm calls, then {calls} at concurrency {concurrency}"
                )
                rounds = await _rounds(c, b, calls, concurrency, progress)
                progress(f"platform: {starts} forced pre-warmed starts")
                prewarmed = []
                for i in range(starts):
                    await _deploy(c, f"pw{i}", wasm)
                    await _wait_idle(c)
                    prewarmed.append(await _timed_start(c, f"/fn/pw{i}", "prewarmed"))
        progress("platform: starting (idle target 0) for cold starts")
        with _platform(root / "b", idle_target=0) as (url, token):
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
                cold, from_template = [], []
                for i in range(starts):
                    await _deploy(c, f"cold{i}", wasm, '{"concurrency": 8, "keep_alive_s": 0.5}')
                    cold.append(await _timed_start(c, f"/fn/cold{i}", "cold"))
                    preloaded = await until_templated(c, f"cold{i}@1", i + 1)
                    from_template.append(await _timed_start(c, f"/fn/cold{i}", "cold"))
                    if await until_templated(c, f"cold{i}@1", i + 1) != preloaded + 1:
                        raise BenchError(f"cold{i}'s second start did not come from its template")
    warm, vm, in_platform, base = rounds.warm, rounds.vm, rounds.in_platform, rounds.base
    outside = [w - v for w, v in zip(warm, vm, strict=True)]
    result["rps"] = round(rounds.rps, 1)
    result["baseline_rps"] = round(rounds.baseline_rps, 1)
    result.update(
        {
            "warm_p50_ms": round(percentile(warm, 50), 2),
            "warm_p99_ms": round(percentile(warm, 99), 2),
            # The round trip to the VM as the node saw it, and what the call spent outside
            # it (HTTP, gateway, scheduler, framing), per call and then the median.
            "warm_vm_ms_p50": round(percentile(vm, 50), 2),
            "host_path_ms_p50": round(percentile(outside, 50), 2),
            # ... of which in the platform around the VM (lookup, placement, parsing), and
            # the rest: the client, HTTP and the gateway's handler.
            "platform_around_vm_ms_p50": round(
                percentile([p - v for p, v in zip(in_platform, vm, strict=True)], 50), 2
            ),
            "http_and_client_ms_p50": round(
                percentile([w - p for w, p in zip(warm, in_platform, strict=True)], 50), 2
            ),
            "baseline_p50_ms": round(percentile(base, 50), 2),
            "baseline_p99_ms": round(percentile(base, 99), 2),
            "prewarmed_start_ms_p50": round(statistics.median(prewarmed), 1),
            "cold_start_ms_p50": round(statistics.median(cold), 1),
            "cold_template_start_ms_p50": round(statistics.median(from_template), 1),
        }
    )
    result["ratio_cold_template_to_prewarmed"] = round(
        result["cold_template_start_ms_p50"] / result["prewarmed_start_ms_p50"], 2
    )
    result["ratio_warm_p50"] = round(result["warm_p50_ms"] / result["baseline_p50_ms"], 2)
    result["ratio_warm_p99"] = round(result["warm_p99_ms"] / result["baseline_p99_ms"], 2)
    result["ratio_rps"] = round(result["rps"] / result["baseline_rps"], 3)
    # Each round's own ratios: the machine's drift between rounds does not enter them.
    result["ratio_warm_p50_rounds"] = [round(r, 2) for r in rounds.warm_ratios]
    result["ratio_rps_rounds"] = [round(r, 3) for r in rounds.rps_ratios]
    result["rounds"] = rounds.table
    return result


def bench_platform(
    wasm: bytes,
    calls: int = 300,
    concurrency: int = 16,
    starts: int = 3,
    progress: Progress = print,
) -> dict[str, Any]:
    return asyncio.run(_run(wasm, calls, concurrency, starts, progress))
