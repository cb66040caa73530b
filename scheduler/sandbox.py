"""The small interface the pool needs of a VM, and the factory that boots real microVMs."""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from unikernel.accel import Accel
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.types import Invocation, InvocationResult


class Sandbox(Protocol):
    """What the pool needs of a VM (``unikernel.vm.MicroVM`` provides it)."""

    @property
    def alive(self) -> bool: ...

    async def load(self, fn_id: str, artifact: bytes, *, files: bytes | None = None) -> Any: ...

    async def invoke(self, fn_id: str, invocation: Invocation) -> InvocationResult: ...

    async def stop(self) -> None: ...

    def rss_kib(self) -> int: ...


class SandboxFactory(Protocol):
    async def boot(self) -> Sandbox: ...


class MicroVMFactory:
    """Boots real QEMU microVMs, named ``pool-1``, ``pool-2``, ..."""

    def __init__(self, image: GuestImage, vm_settings: VMSettings, accel: Accel) -> None:
        self.image = image
        self.vm_settings = vm_settings
        self.accel = accel
        self._numbers = itertools.count(1)

    async def boot(self) -> Sandbox:
        name = f"pool-{next(self._numbers)}"
        return await MicroVM.boot(self.image, self.vm_settings, self.accel, name=name)


# Guest RAM the system itself holds: the unpacked image (~38 MiB), the
# kernel (~12 MiB) and the agent (~22 MiB), rounded up.
GUEST_SYSTEM_MIB = 96


def function_memory_budget(vm_settings: VMSettings) -> int:
    """Guest RAM left for the linear memory of the calls running in one VM."""
    return max(16, vm_settings.guest_memory_mib - GUEST_SYSTEM_MIB)


# What one VM may cost the host at most, beyond its guest RAM: the TCG
# translation cache plus QEMU itself (measured ~15 MiB) with room to spare.
VM_OVERHEAD_MIB = 48
# Left to the host: gateway, Redis, page cache for the image.
HOST_RESERVE_MIB = 1024


def memory_capacity(vm_settings: VMSettings, meminfo: str | None = None) -> int:
    """How many VMs this host's available memory holds if every guest used all its RAM."""
    if meminfo is None:
        with open("/proc/meminfo") as f:
            meminfo = f.read()
    available_kib = next(
        int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemAvailable:")
    )
    per_vm = vm_settings.guest_memory_mib + vm_settings.tcg_tb_size_mib + VM_OVERHEAD_MIB
    return max(1, (available_kib // 1024 - HOST_RESERVE_MIB) // per_vm)
