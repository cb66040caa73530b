"""How many more VMs the host's memory takes now: measured, not assumed.

Assuming every guest fills all of its RAM capped a 24 GiB host at 36 VMs while
36 idle clones used 33 MiB each. So a VM is admitted when the memory the
kernel says is available (``MemAvailable``), less a reserve for everything
else on the host, holds one more VM of the size live VMs measure (their
private memory, with a margin for what calls add). A VM's worst case stays
bounded by its cgroup (``unikernel.confine.vm_memory_ceiling_mib``); when VMs
grow anyway and available memory falls below the reserve, the pool stops idle
VMs (:func:`scheduler.pool.placement.pressure_victims`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Collection, Iterable

from scheduler.pool.vmrecord import VMRecord, VMState

# A new VM's cost before any VM was measured: a booted (not cloned) guest's
# private memory, ~136 MiB measured under TCG, rounded up.
UNMEASURED_VM_MIB = 160
# Over the median measured VM: a clone writes pages as its calls run, and
# page tables and QEMU's own buffers come on top of what it holds at rest.
VM_MARGIN = 1.5
# No estimate below this, whatever an idle clone measures.
MIN_VM_MIB = 32
# VMs read to estimate the next one's size: enough for a median, cheap at 300 VMs.
SAMPLE_VMS = 16


def read_meminfo() -> str:
    with open("/proc/meminfo") as f:
        return f.read()


def available_mib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise ValueError("no MemAvailable line in /proc/meminfo")


@dataclasses.dataclass(frozen=True)
class MemoryStatus:
    available_mib: int  # what the kernel says is available, reserve included
    reserve_mib: int
    vm_mib: float  # what the next VM is expected to cost
    room: int  # VMs the host's memory takes beyond those running and booting


class HostMemory:
    """Admission by available memory; ``observe`` keeps the per-VM estimate current."""

    def __init__(
        self,
        *,
        ceiling_mib: int,
        reserve_mib: int,
        read: Callable[[], str] = read_meminfo,
    ) -> None:
        self.ceiling_mib = ceiling_mib
        self.reserve_mib = reserve_mib
        self._read = read
        self.vm_mib = float(min(UNMEASURED_VM_MIB, ceiling_mib))

    def available_mib(self) -> int:
        # Read afresh each time (~20 us): only a start or a status asks, never a warm call.
        return available_mib(self._read())

    def observe(self, private_kib: Iterable[int]) -> None:
        """Estimate the next VM from the private memory of some live, booted VMs."""
        sizes = [kib / 1024 for kib in private_kib if kib > 0]
        if sizes:
            typical = statistics.median(sizes) * VM_MARGIN
            self.vm_mib = min(float(self.ceiling_mib), max(float(MIN_VM_MIB), typical))

    def vm_limit(self, max_vms: int, vms: Collection[VMRecord]) -> int:
        """What a pool holding ``vms`` may hold now: ``max_vms``, fewer while memory holds fewer."""
        return min(max_vms, len(vms) + self.room(booting(vms)))

    def room(self, booting: int, available_mib: int | None = None) -> int:
        """VMs that may start now; ``booting`` ones are not in the reading yet."""
        available = self.available_mib() if available_mib is None else available_mib
        return max(0, math.floor((available - self.reserve_mib) / self.vm_mib) - booting)

    def shortfall_vms(self) -> int:
        """VMs to stop for available memory to be back above the reserve."""
        short = self.reserve_mib - self.available_mib()
        return math.ceil(short / self.vm_mib) if short > 0 else 0

    def status(self, vms: Collection[VMRecord]) -> MemoryStatus:
        available = self.available_mib()  # one reading for both fields
        return MemoryStatus(
            available_mib=available,
            reserve_mib=self.reserve_mib,
            vm_mib=round(self.vm_mib, 1),
            room=self.room(booting(vms), available),
        )


def booting(vms: Iterable[VMRecord]) -> int:
    """VMs whose memory the host's reading does not show yet."""
    return sum(vm.state is VMState.BOOTING for vm in vms)


def host_memory(
    ceiling_mib: int | None, reserve_mib: int, read: Callable[[], str]
) -> HostMemory | None:
    """Admission by memory for VMs of at most ``ceiling_mib`` each (None: not admitted by it)."""
    if ceiling_mib is None:
        return None
    return HostMemory(ceiling_mib=ceiling_mib, reserve_mib=reserve_mib, read=read)
