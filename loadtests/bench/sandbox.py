"""The sandbox benchmark: boot, protocol round trip, invoke latency and memory of one microVM.

Every ratio-worthy number has its baseline measured in the same run (floor
boot next to agent boot, in-process wasmtime next to the VM), so machine
noise cancels in the comparison.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadtests.bench.stats import percentile
from unikernel.accel import Accel, floor_boot, resolve_accel
from unikernel.confine import Confinement
from unikernel.confine import probe as probe_confinement
from unikernel.image import GuestImage, guest_image
from unikernel.settings import VMSettings
from unikernel.snapshot import Template, make_template
from unikernel.vm import MicroVM
from wasm_runtime.types import Invocation

Progress = Callable[[str], None]
ECHO_PAYLOAD = b"x" * 64
# Idle time after the agent's hello before the settled RSS sample: the guest
# reports freed pages (free page reporting) only 2 s after they are freed, and
# the boot frees the initrd copy just before the agent starts.
SETTLE_S = 4.0


async def _timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _native_invoke_ms(artifact: bytes, n: int) -> list[float]:
    from wasm_runtime.runner import FunctionRuntime

    runtime = FunctionRuntime()
    try:
        fn = runtime.load(artifact)
        inv = Invocation(stdin=ECHO_PAYLOAD)
        out = []
        for _ in range(n):
            started = time.perf_counter()
            runtime.invoke(fn, inv).raise_for_outcome()
            out.append((time.perf_counter() - started) * 1000)
        return out
    finally:
        runtime.close()


async def _clone_sample(
    template: Template, settings: VMSettings, confinement: Confinement, artifact: bytes, calls: int
) -> tuple[float, float, list[float]]:
    """One clone: restore seconds, settled-ish RSS (MiB) after a warm echo, echo latencies."""
    clone = await MicroVM.restore(template, settings, name="bench-jail", confinement=confinement)
    try:
        await clone.load("echo", artifact)
        inv = Invocation(stdin=ECHO_PAYLOAD)

        async def echo() -> None:
            (await clone.invoke("echo", inv)).raise_for_outcome()

        latencies = await _timed(echo, calls)
        return clone.boot_s, clone.rss_kib() / 1024, latencies
    finally:
        await clone.stop()


async def confinement_cost(
    image: GuestImage,
    settings: VMSettings,
    accel: Accel,
    artifact: bytes,
    *,
    samples: int = 3,
    calls: int = 50,
) -> dict[str, Any]:
    """Boot, clone, RSS and echo latency with the host's confinement next to none, in
    alternation so that the machine's drift falls on both."""
    confined = await probe_confinement(settings)
    arms = {"unconfined": Confinement.none(), "confined": confined}
    boots: dict[str, list[float]] = {arm: [] for arm in arms}
    restores: dict[str, list[float]] = {arm: [] for arm in arms}
    rss: dict[str, list[float]] = {arm: [] for arm in arms}
    echo: dict[str, list[float]] = {arm: [] for arm in arms}
    templates = {arm: await make_template(image, settings, accel, c) for arm, c in arms.items()}
    try:
        for _ in range(samples):
            for arm, c in arms.items():
                vm = await MicroVM.boot(image, settings, accel, name="bench-jail", confinement=c)
                boots[arm].append(vm.boot_s)
                await vm.stop()
                restore_s, rss_mib, latencies = await _clone_sample(
                    templates[arm], settings, c, artifact, calls
                )
                restores[arm].append(restore_s)
                rss[arm].append(rss_mib)
                echo[arm].extend(latencies)
    finally:
        for template in templates.values():
            template.remove()

    def median(d: dict[str, list[float]], arm: str) -> float:
        return statistics.median(d[arm])

    out: dict[str, Any] = {"confinement": confined.qemu_args(Path("RUN_DIR"))}
    out["confinement_not_applied"] = list(confined.not_applied)
    for arm in arms:
        out[f"{arm}_boot_to_ready_s"] = round(median(boots, arm), 3)
        out[f"{arm}_restore_to_ready_s"] = round(median(restores, arm), 3)
        out[f"{arm}_clone_rss_mib"] = round(median(rss, arm), 1)
        out[f"{arm}_invoke_ms_p50"] = round(percentile(echo[arm], 50), 3)
    for name, d in (("boot", boots), ("restore", restores), ("clone_rss", rss)):
        out[f"ratio_confined_over_unconfined_{name}"] = round(
            median(d, "confined") / max(median(d, "unconfined"), 1e-9), 2
        )
    out["ratio_confined_over_unconfined_invoke"] = round(
        percentile(echo["confined"], 50) / max(percentile(echo["unconfined"], 50), 1e-9), 2
    )
    return out


async def bench_sandbox(
    settings: VMSettings,
    echo_wasm: bytes,
    boots: int = 5,
    calls: int = 200,
    progress: Progress = print,
) -> dict[str, Any]:
    from wasm_runtime.engine import precompile

    image = guest_image(settings, progress)
    accel = await resolve_accel(settings, image)
    progress(f"accelerator: {accel}; {boots} floor boots")
    floors = [
        await floor_boot(image, settings, accel, settings.boot_timeout_s) for _ in range(boots)
    ]
    progress(f"{boots} agent boots")
    readies: list[float] = []
    vm: MicroVM | None = None
    try:
        for i in range(boots):
            vm = await MicroVM.boot(image, settings, accel, name="bench")
            readies.append(vm.boot_s)
            if i < boots - 1:
                await vm.stop()
        assert vm is not None
        rss_ready_kib = vm.rss_kib()
        idle_from = time.perf_counter()
        await vm.ping()
        await asyncio.sleep(1.0)  # let the boot's transient pages settle
        rss_idle_kib = vm.rss_kib()
        await asyncio.sleep(max(0.0, SETTLE_S - (time.perf_counter() - idle_from)))
        rss_settled_kib = vm.rss_kib()
        rss_anon_settled_kib = vm.rss_kib("RssAnon")
        progress(f"{calls} pings")
        rtts = await _timed(vm.agent.ping, calls)
        artifact = precompile(echo_wasm)
        load = await vm.load("echo", artifact)
        inv = Invocation(stdin=ECHO_PAYLOAD)

        async def echo() -> None:
            assert vm is not None
            result = await vm.invoke("echo", inv)
            result.raise_for_outcome()

        progress(f"{calls} echo invocations in the VM")
        first_call_ms = (await _timed(echo, 1))[0]
        vm_calls = await _timed(echo, calls)
        rss_after_kib = vm.rss_kib()
    finally:
        if vm is not None:
            await vm.stop()
    progress(f"snapshot template, {boots} clones")
    template = await make_template(image, settings, accel)
    restores: list[float] = []
    try:
        for _ in range(boots):
            clone = await MicroVM.restore(template, settings, name="bench-clone")
            try:
                restores.append(clone.boot_s)
                await clone.load("echo", artifact)
                started = time.perf_counter()
                (await clone.invoke("echo", inv)).raise_for_outcome()
                clone_first_call_ms = (time.perf_counter() - started) * 1000
                clone_rss_kib, clone_anon_kib = clone.rss_kib(), clone.rss_kib("RssAnon")
            finally:
                await clone.stop()
    finally:
        template.remove()
    progress(f"{calls} echo invocations in-process")
    native = _native_invoke_ms(artifact, calls)
    progress("confinement: boots, clones and calls confined and not, alternating")
    jail = await confinement_cost(image, settings, accel, artifact)
    return {
        **jail,
        "accel": accel,
        "machine": settings.machine,
        "guest_memory_mib": settings.guest_memory_mib,
        "tcg_tb_size_mib": settings.tcg_tb_size_mib,
        "image_bytes": image.initrd_bytes,
        "kernel_bytes": image.kernel.stat().st_size,
        "boots": boots,
        "boot_to_ready_s": round(statistics.median(readies), 3),
        "boot_to_ready_s_all": [round(x, 3) for x in readies],
        "floor_boot_s": round(statistics.median(floors), 3),
        "restore_to_ready_s": round(statistics.median(restores), 3),
        "restore_to_ready_s_all": [round(x, 3) for x in restores],
        "ratio_boot_over_restore": round(
            statistics.median(readies) / max(statistics.median(restores), 1e-9), 1
        ),
        "first_invoke_clone_ms": round(clone_first_call_ms, 2),
        "clone_rss_mib": round(clone_rss_kib / 1024, 1),
        "clone_rss_anon_mib": round(clone_anon_kib / 1024, 1),
        "floor_boot_s_all": [round(x, 3) for x in floors],
        "rtt_ms_p50": round(percentile(rtts, 50), 3),
        "rtt_ms_p99": round(percentile(rtts, 99), 3),
        "load_ms_in_guest": round(load.load_ms, 2),
        "first_invoke_vm_ms": round(first_call_ms, 2),
        "invoke_vm_ms_p50": round(percentile(vm_calls, 50), 3),
        "invoke_vm_ms_p99": round(percentile(vm_calls, 99), 3),
        "invoke_native_ms_p50": round(percentile(native, 50), 3),
        "invoke_native_ms_p99": round(percentile(native, 99), 3),
        "invoke_ratio_vm_over_native": round(
            percentile(vm_calls, 50) / max(percentile(native, 50), 1e-9), 1
        ),
        "qemu_rss_mib_at_ready": round(rss_ready_kib / 1024, 1),
        "qemu_rss_mib": round(rss_idle_kib / 1024, 1),
        "settle_s": SETTLE_S,
        "qemu_rss_mib_settled": round(rss_settled_kib / 1024, 1),
        "qemu_rss_anon_mib_settled": round(rss_anon_settled_kib / 1024, 1),
        "qemu_rss_mib_after_calls": round(rss_after_kib / 1024, 1),
    }
