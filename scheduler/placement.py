"""Pool bookkeeping: a VM's record and the pure choices made over records (no I/O, no awaits)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
from collections.abc import Callable, Iterable

from scheduler.model import FunctionVersion
from scheduler.sandbox import Sandbox


class VMState(enum.StrEnum):
    BOOTING = "booting"
    IDLE = "idle"  # generic: booted, no function loaded
    BOUND = "bound"  # loaded (or loading) one function version; serves only that
    DRAINING = "draining"  # no new calls; stopped when its calls end
    GONE = "gone"  # out of the pool; stopped or being stopped


@dataclasses.dataclass(eq=False)
class VMRecord:
    id: int
    state: VMState
    fv: FunctionVersion | None = None  # the version it is bound (or booting) for
    sandbox: Sandbox | None = None
    boot_task: asyncio.Task[Sandbox] | None = None
    stop_task: asyncio.Task[None] | None = None
    loaded: bool = False
    in_flight: int = 0  # reserved slots: calls running, or the boot/load before the first
    last_used: float = 0.0
    # Set when its boot is over, booted or not (a call that claimed it while booting waits).
    boot_over: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def key(self) -> str | None:
        return self.fv.key if self.fv else None

    @property
    def gone(self) -> bool:
        # A method, not an inline comparison, so type narrowing does not outlive an await.
        return self.state is VMState.GONE


def count_of(vms: Iterable[VMRecord], key: str) -> int:
    """VMs of this version that still take calls (booting or bound, not draining)."""
    return sum(1 for vm in vms if vm.key == key and vm.state in (VMState.BOOTING, VMState.BOUND))


def booted_count_of(vms: Iterable[VMRecord], key: str) -> int:
    """VMs of this version that are booted and take calls."""
    return sum(1 for vm in vms if vm.key == key and vm.state is VMState.BOUND)


def slots(fv: FunctionVersion, memory_budget_mib: int | None) -> int:
    """Calls one VM of ``fv`` may run at once.

    The function's concurrency, but never more calls than the guest can give
    their full memory cap at once: a guest that runs out of memory itself
    dies with every call in it, where a call hitting its cap fails alone.
    """
    if memory_budget_mib is None:
        return fv.config.concurrency
    return max(1, min(fv.config.concurrency, memory_budget_mib // fv.config.memory_mib))


def pick_warm(
    vms: Iterable[VMRecord], fv: FunctionVersion, memory_budget_mib: int | None = None
) -> VMRecord | None:
    """A live loaded VM of ``fv`` with a free slot: the least busy, then the most recent."""
    limit = slots(fv, memory_budget_mib)
    warm = [
        vm
        for vm in vms
        if vm.state is VMState.BOUND
        and vm.key == fv.key
        and vm.loaded
        and vm.in_flight < limit
        and vm.sandbox is not None
        and vm.sandbox.alive
    ]
    return min(warm, key=lambda v: (v.in_flight, -v.last_used)) if warm else None


def pick_idle(vms: Iterable[VMRecord]) -> VMRecord | None:
    idle = [vm for vm in vms if vm.state is VMState.IDLE]
    return min(idle, key=lambda v: v.id) if idle else None


def pick_booting_generic(vms: Iterable[VMRecord]) -> VMRecord | None:
    """A generic VM still booting that no call has claimed: the one started first."""
    booting = [vm for vm in vms if vm.state is VMState.BOOTING and vm.fv is None]
    return min(booting, key=lambda v: v.id) if booting else None


def pick_victim(
    vms: Iterable[VMRecord], key: str, idle_before: float | None = None
) -> VMRecord | None:
    """The least recently used idle VM bound to another version; those above min_warm first.

    With ``idle_before``, only VMs last used before that time qualify.
    """
    vms = list(vms)
    candidates = [
        vm
        for vm in vms
        if vm.state is VMState.BOUND
        and vm.key != key
        and vm.loaded
        and vm.in_flight == 0
        and (idle_before is None or vm.last_used <= idle_before)
    ]
    above = [
        vm
        for vm in candidates
        if vm.fv is not None and count_of(vms, vm.fv.key) > vm.fv.config.min_warm
    ]
    chosen = above or candidates
    return min(chosen, key=lambda v: v.last_used) if chosen else None


def expired(vms: Iterable[VMRecord], now: float, retired: Callable[[str], bool]) -> list[VMRecord]:
    """Bound VMs idle past their keep-alive, oldest first, leaving each version its min_warm."""
    groups: dict[str, list[VMRecord]] = {}
    for vm in vms:
        if vm.state is VMState.BOUND and vm.fv is not None and vm.loaded:
            groups.setdefault(vm.fv.key, []).append(vm)
    out: list[VMRecord] = []
    for key, group in groups.items():
        fv = group[0].fv
        assert fv is not None
        keep = 0 if retired(key) else fv.config.min_warm
        idle = sorted(
            (v for v in group if v.in_flight == 0 and now - v.last_used > fv.config.keep_alive_s),
            key=lambda v: v.last_used,
        )
        out.extend(idle[: max(0, len(group) - keep)])
    return out


def retry_after_s(
    vms: Iterable[VMRecord],
    queue_depth: int,
    call_estimate_s: float,
    queue_timeout_s: float,
    memory_budget_mib: int | None = None,
) -> int:
    """Seconds until a slot is likely free: the queue ahead spread over the bound slots."""
    total = sum(
        slots(vm.fv, memory_budget_mib)
        for vm in vms
        if vm.fv is not None and vm.state is VMState.BOUND
    )
    estimate = call_estimate_s * (queue_depth + 1) / max(1, total)
    return max(1, min(math.ceil(queue_timeout_s), math.ceil(estimate)))
