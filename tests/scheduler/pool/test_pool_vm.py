"""The pool on real QEMU microVMs: cold, warm and pre-warmed starts, a cold start from its
version's template, admission by the host's real memory; close leaves no QEMU and no
template."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from scheduler.errors import CapacityExhausted
from scheduler.model import FunctionConfig, FunctionVersion, StartKind
from scheduler.pool.capacity import MIN_VM_MIB, VM_MARGIN
from scheduler.pool.pool import Pool
from scheduler.pool.sandbox import MicroVMFactory, Sandbox
from scheduler.settings import PoolSettings
from tests.conftest import artifact
from tests.vms import running
from unikernel.accel import Accel
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.types import Invocation, Limits

pytestmark = pytest.mark.vm


class RecordingFactory(MicroVMFactory):
    """The real factory, remembering each QEMU pid it started."""

    pids: list[int]
    vms: list[MicroVM]

    async def boot(self, fn_id: str | None = None) -> Sandbox:
        vm = await super().boot(fn_id)
        assert isinstance(vm, MicroVM) and vm.pid is not None
        self.pids.append(vm.pid)
        self.vms.append(vm)
        return vm


def _version(name: str, keep_alive_s: float = 120.0) -> FunctionVersion:
    return FunctionVersion(name, 1, "m", "a", None, FunctionConfig(keep_alive_s=keep_alive_s), 0.0)


async def _until(what: str, check: Callable[[], bool]) -> None:
    for _ in range(600):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"waited 60 s for {what}")


async def _load_echo() -> tuple[bytes, bytes | None]:
    return artifact("echo"), None


async def test_pool_on_real_vms(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel
) -> None:
    factory = RecordingFactory(guest_image, vm_settings, accel)
    factory.pids, factory.vms = [], []
    # No start(): the first call finds no generic VM; the top-up after it boots one.
    pool = Pool(factory, PoolSettings(max_vms=3, idle_target=1, reclaim_interval_s=60))
    try:
        call = Invocation(stdin=b"ping", limits=Limits(timeout_ms=5000))
        echo = _version("echo", keep_alive_s=0.5)
        result, kind, _, _ = await pool.invoke(echo, _load_echo, call)
        assert (kind, result.stdout) == (StartKind.COLD, b"ping")
        result, kind, _, _ = await pool.invoke(echo, _load_echo, call)
        assert (kind, result.stdout) == (StartKind.WARM, b"ping")
        await _until("a generic VM", lambda: pool.status().idle == 1)
        result, kind, _, _ = await pool.invoke(_version("other"), _load_echo, call)
        assert (kind, result.stdout) == (StartKind.PREWARMED, b"ping")
        assert len(factory.pids) >= 2 and all(running(pid) for pid in factory.pids[:2])
    finally:
        await pool.close()
    assert [pid for pid in factory.pids if running(pid)] == []


async def test_a_cold_start_restores_its_versions_template(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel
) -> None:
    factory = RecordingFactory(guest_image, vm_settings, accel)
    factory.pids, factory.vms = [], []
    pool = Pool(factory, PoolSettings(max_vms=2, idle_target=0, reclaim_interval_s=60))
    call = Invocation(stdin=b"ping", limits=Limits(timeout_ms=5000))
    echo = _version("echo", keep_alive_s=0.5)
    try:
        result, kind, _, _ = await pool.invoke(echo, _load_echo, call)
        assert (kind, result.stdout) == (StartKind.COLD, b"ping")
        assert factory.vms[0].preloaded is None
        # the first load asked for a template; once it is made, the VM goes
        await _until("echo's template", lambda: factory.versions.get("echo@1") is not None)
        template = factory.versions.get("echo@1")
        assert template is not None
        await asyncio.sleep(0.6)
        assert pool.reclaim() == 1

        async def never() -> tuple[bytes, bytes | None]:
            raise AssertionError("a VM from the template needs no artifact")

        result, kind, _, _ = await pool.invoke(echo, never, call)
        assert (kind, result.stdout) == (StartKind.COLD, b"ping")
        assert factory.vms[-1].preloaded == "echo@1"
    finally:
        await pool.close()
    assert [pid for pid in factory.pids if running(pid)] == []
    assert not template.directory.exists()


async def test_memory_admission_reads_the_real_host(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel
) -> None:
    factory = RecordingFactory(guest_image, vm_settings, accel)
    factory.pids, factory.vms = [], []
    settings = PoolSettings(max_vms=4, idle_target=0, reclaim_interval_s=60, queue_timeout_s=1)
    pool = Pool(factory, settings)
    call = Invocation(stdin=b"ping", limits=Limits(timeout_ms=5000))
    try:
        await pool.invoke(_version("echo"), _load_echo, call)
        memory = pool.memory
        assert memory is not None
        pool.reclaim()  # measures the live VM
        private_mib = factory.vms[0].private_kib() / 1024
        assert 1 < private_mib < vm_settings.guest_memory_mib + vm_settings.tcg_tb_size_mib
        assert memory.vm_mib == pytest.approx(
            min(memory.ceiling_mib, max(MIN_VM_MIB, private_mib * VM_MARGIN)), rel=0.2
        )
        status = pool.status().memory
        assert status is not None and status.available_mib > 0
        # A host whose available memory is below the reserve: a new function still gets
        # a VM by evicting an idle one (memory-neutral), the idle VM left is stopped, and
        # then no VM starts at all.
        memory.reserve_mib = memory.available_mib() + 100_000
        await pool.invoke(_version("other"), _load_echo, call)
        assert pool.status().evictions == 1 and pool.status().vms == 1
        pool.reclaim()
        await _until("the idle VM stopped", lambda: not any(map(running, factory.pids)))
        assert pool.status().pressure_evictions == 1 and pool.status().vms == 0
        with pytest.raises(CapacityExhausted):
            await pool.invoke(_version("third"), _load_echo, call)
        assert len(factory.pids) == 2
    finally:
        await pool.close()
    assert [pid for pid in factory.pids if running(pid)] == []
