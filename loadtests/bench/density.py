"""``unifaas bench density``: how many warm bound VMs this host holds, and what each costs.

Starts ``unifaas up`` allowed VMS microVMs, deploys VMS copies of echo with one warm
VM each (``min_warm`` 1) and waits until they are bound or the platform stops adding
VMs (its memory admission says the host is full). Then, with every VM idle, it reads
each QEMU: proportional set size (``Pss`` in ``smaps_rollup``, shared pages split
between the VMs sharing them), private memory, and CPU time over a window. The
baseline in the same run is the rule admission replaced: every VM counted at its
worst case (``unikernel.confine.vm_memory_ceiling_mib``), from the same reading of
available memory.

Per-version templates are off: each of VMS versions would make (and, past the LRU
bound, remake) a template of its own, a QEMU each, which is not what is measured.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.stats import cpu_ticks
from loadtests.chaos import qemu_children
from loadtests.errors import BenchError
from loadtests.launch import platform_process
from scheduler.pool import available_mib, read_meminfo
from scheduler.settings import PoolSettings
from unikernel.confine import vm_memory_ceiling_mib
from unikernel.settings import VMSettings

Progress = Callable[[str], None]
# No VM starting and none added for this long: the platform holds what it can.
STALL_S = 30.0
CLOCK_TICKS = 100  # USER_HZ on Linux


def _proc_kib(pid: int, path: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _deploy(c: httpx.AsyncClient, wasm: bytes, count: int, progress: Progress) -> None:
    config = json.dumps({"min_warm": 1, "max_vms": 1, "keep_alive_s": 3600})
    for i in range(count):
        r = await c.post(
            f"/v1/functions/d{i:03d}", files={"module": ("m.wasm", wasm)}, data={"config": config}
        )
        if r.status_code not in (200, 201):
            raise BenchError(f"deploying d{i:03d}: {r.status_code} {r.text[:200]}")
        if (i + 1) % 50 == 0:
            progress(f"deployed {i + 1} of {count}")


async def _hold(
    c: httpx.AsyncClient, want: int, progress: Progress
) -> tuple[dict[str, Any], float]:
    began = time.perf_counter()
    best, best_at, last_note = -1, began, began
    while True:
        status: dict[str, Any] = (await c.get("/v1/status")).json()
        pool = status["pool"]
        now = time.perf_counter()
        starting = pool["booting"] + pool["loading"]
        if pool["bound"] > best or starting:
            best, best_at = max(best, pool["bound"]), now
        settled = pool["vms"] == pool["bound"] and not pool["templates_making"]
        # Full: every VM bound, or none starting any more and no VM added for a while.
        if (pool["bound"] >= want and settled) or now - best_at > STALL_S:
            return status, now - began
        if now - last_note > 15:
            progress(f"{pool['bound']} bound, {pool['booting']} booting, {pool['loading']} loading")
            last_note = now
        await asyncio.sleep(1.0)


async def _run(
    wasm: bytes, vms: int, settle_s: float, window_s: float, progress: Progress
) -> dict[str, Any]:
    available_before = available_mib(read_meminfo())
    ceiling = vm_memory_ceiling_mib(VMSettings())
    with tempfile.TemporaryDirectory(prefix="unifaas-density-") as tmp:
        state = Path(tmp) / "state"
        env = {
            "UNIFAAS_IDLE_TARGET": "0",
            "UNIFAAS_VM_VERSION_TEMPLATES": "0",
            "UNIFAAS_AUTOSCALE": "0",
        }
        progress(f"platform: starting, up to {vms} VMs")
        with platform_process(state, max_vms=vms, extra_env=env) as served:
            token = (state / "token").read_text().strip()
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=served.url, headers=auth, timeout=120) as c:
                progress(f"deploying {vms} copies of echo, one warm VM each")
                began = time.perf_counter()
                await _deploy(c, wasm, vms, progress)
                status, waited = await _hold(c, vms, progress)
                fill_s = time.perf_counter() - began
                progress(f"{status['pool']['bound']} VMs bound; idle for {settle_s:g} s")
                await asyncio.sleep(settle_s)
                pids = qemu_children(served.proc.pid)
                available_held = available_mib(read_meminfo())
                ticks = {pid: cpu_ticks(pid) for pid in pids}
                t0 = time.perf_counter()
                await asyncio.sleep(window_s)
                elapsed = time.perf_counter() - t0
                used = [cpu_ticks(pid) - before for pid, before in ticks.items()]
                pss = [_proc_kib(pid, "smaps_rollup", "Pss") / 1024 for pid in pids]
                anon = [_proc_kib(pid, "status", "RssAnon") / 1024 for pid in pids]
                status = (await c.get("/v1/status")).json()
    if not pids:
        raise BenchError("no QEMU was running when the VMs were measured")
    held = status["pool"]["bound"]
    reserve = PoolSettings().memory_reserve_mib
    ceiling_rule = max(1, (available_before - reserve) // ceiling)
    cpu_pct = [100 * u / CLOCK_TICKS / elapsed for u in used]
    memory = status["pool"].get("memory") or {}
    return {
        "vms_wanted": vms,
        "vms_held": held,
        "qemus_measured": len(pids),
        "ceiling_rule_vms": ceiling_rule,
        "ratio_held_over_ceiling_rule": round(held / ceiling_rule, 2),
        "fill_s": round(fill_s, 1),
        "hold_wait_s": round(waited, 1),
        "pss_mib_per_vm": round(statistics.mean(pss), 1),
        "rss_anon_mib_per_vm": round(statistics.mean(anon), 1),
        "host_mib_per_vm": round((available_before - available_held) / max(1, len(pids)), 1),
        "idle_cpu_pct_per_vm": round(statistics.mean(cpu_pct), 3),
        "idle_cpu_pct_per_vm_max": round(max(cpu_pct), 3),
        "idle_cpu_pct_all_vms": round(sum(cpu_pct), 1),
        "host_available_mib_before": available_before,
        "host_available_mib_held": available_held,
        "admission_vm_estimate_mib": memory.get("vm_mib"),
        "admission_room_left": memory.get("room"),
        "pressure_evictions": status["pool"].get("pressure_evictions"),
    }


def bench_density(
    wasm: bytes,
    vms: int = 300,
    settle_s: float = 10.0,
    window_s: float = 20.0,
    progress: Progress = print,
) -> dict[str, Any]:
    return asyncio.run(_run(wasm, vms, settle_s, window_s, progress))
