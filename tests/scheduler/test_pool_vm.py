"""The pool on real QEMU microVMs: cold, warm and pre-warmed starts; close leaves no QEMU."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.model import FunctionConfig, FunctionVersion, StartKind
from scheduler.pool import Pool
from scheduler.sandbox import MicroVMFactory, Sandbox
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

    async def boot(self) -> Sandbox:
        vm = await super().boot()
        assert isinstance(vm, MicroVM) and vm.pid is not None
        self.pids.append(vm.pid)
        return vm


def _version(name: str) -> FunctionVersion:
    return FunctionVersion(name, 1, "m", "a", None, FunctionConfig(), 0.0)


async def _load_echo() -> tuple[bytes, bytes | None]:
    return artifact("echo"), None


async def test_pool_on_real_vms(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel
) -> None:
    factory = RecordingFactory(guest_image, vm_settings, accel)
    factory.pids = []
    # No start(): the first call finds no generic VM; the top-up after it boots one.
    pool = Pool(factory, PoolSettings(max_vms=3, idle_target=1, reclaim_interval_s=60))
    try:
        call = Invocation(stdin=b"ping", limits=Limits(timeout_ms=5000))
        result, kind, _, _ = await pool.invoke(_version("echo"), _load_echo, call)
        assert (kind, result.stdout) == (StartKind.COLD, b"ping")
        result, kind, _, _ = await pool.invoke(_version("echo"), _load_echo, call)
        assert (kind, result.stdout) == (StartKind.WARM, b"ping")
        for _ in range(600):
            if pool.status().idle == 1:
                break
            await asyncio.sleep(0.1)
        result, kind, _, _ = await pool.invoke(_version("other"), _load_echo, call)
        assert (kind, result.stdout) == (StartKind.PREWARMED, b"ping")
        assert len(factory.pids) >= 2 and all(running(pid) for pid in factory.pids[:2])
    finally:
        await pool.close()
    assert [pid for pid in factory.pids if running(pid)] == []
