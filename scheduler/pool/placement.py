"""Placement policy: pure choices over VM records (no I/O, no awaits, no mutation).

:func:`place` is the whole order a call's slot is sought in, in one place:

1. **warm**: a loaded VM of its version with a free slot;
2. **pre-warmed**: a generic idle VM, which then loads the version;
3. **claim a booting generic VM**: ready sooner than a new boot, and under TCG
   a second boot would only slow the first down (boots are CPU-bound);
4. **new VM**: boot one, if the node has room;
5. **evict**: stop an idle VM of another version and boot in its place;
6. else nothing: the caller queues.

A version never holds more than its ``max_vms`` (steps 2-5 are skipped when
it does). The pool applies the decision; these functions only look.

A call whose VM is lost before it answers is placed again, the same way, while its own
deadline allows (:mod:`scheduler.pool.retry`). No step takes a VM the host doubts (its
ping went unanswered for a while: frozen, or about to be killed for it).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable, Sequence

from scheduler.model import FunctionRef, FunctionVersion, StartKind
from scheduler.pool.vmrecord import BOOTED_BOUND, TAKES_CALLS, VMRecord, VMState

# How long a VM must have been idle before a function that already has a VM
# of its own may evict it to grow.
EVICT_MIN_IDLE_S = 5.0


class Step(enum.Enum):
    WARM = "warm"
    PREWARMED = "prewarmed"
    CLAIM_BOOTING = "claim_booting"
    BOOT = "boot"
    EVICT_AND_BOOT = "evict_and_boot"

    @property
    def start(self) -> StartKind:
        if self is Step.WARM:
            return StartKind.WARM
        if self is Step.PREWARMED:
            return StartKind.PREWARMED
        return StartKind.COLD


@dataclasses.dataclass(frozen=True)
class Decision:
    step: Step
    vm: VMRecord | None = None  # the VM taken (warm, pre-warmed, claimed)
    victim: VMRecord | None = None  # the VM to evict first (EVICT_AND_BOOT)


def place(
    vms: Sequence[VMRecord],
    fv: FunctionVersion,
    *,
    vm_limit: Callable[[], int],
    memory_budget_mib: int | None,
    now: float,
    for_call: bool = True,
) -> Decision | None:
    """Where a slot for ``fv`` comes from, or None when the call must wait.

    ``for_call`` is False for min_warm top-ups: they want a VM of their own
    (never a warm slot) and never evict.
    """
    if for_call:
        warm = pick_warm(vms, fv, memory_budget_mib)
        if warm is not None:
            return Decision(Step.WARM, warm)
    have = count_of(vms, fv)
    if have >= fv.config.max_vms:
        return None
    idle = pick_idle(vms)
    if idle is not None:
        return Decision(Step.PREWARMED, idle)
    booting = pick_booting_generic(vms)
    if booting is not None:
        return Decision(Step.CLAIM_BOOTING, booting)
    if len(vms) < vm_limit():  # asked only here: it may read the host's memory
        return Decision(Step.BOOT)
    if not for_call:
        return None
    # A function with no VM evicts whatever is idle longest, or it would
    # starve. One that has a VM already only takes VMs idle for a while:
    # evicting one another function used a moment ago and cold-booting costs
    # seconds under TCG, where waiting for its own slot costs milliseconds.
    idle_before = None if have == 0 else now - EVICT_MIN_IDLE_S
    victim = pick_victim(vms, fv, idle_before)
    return Decision(Step.EVICT_AND_BOOT, victim=victim) if victim is not None else None


def count_of(vms: Iterable[VMRecord], fv: FunctionVersion) -> int:
    """VMs of this version that still take calls (booting, loading or bound; not draining)."""
    return sum(1 for vm in vms if vm.state in TAKES_CALLS and vm.serves(fv))


def generic_count(vms: Iterable[VMRecord]) -> int:
    """Generic VMs booting or idle: what the idle target counts."""
    return sum(1 for vm in vms if vm.fv is None and vm.state in (VMState.BOOTING, VMState.IDLE))


def bound_count_of(vms: Iterable[VMRecord], fv: FunctionVersion) -> int:
    """VMs of this version loaded and taking calls, and trusted (not doubted): their busy
    slots free in a call's time."""
    return sum(1 for vm in vms if vm.state is VMState.BOUND and not vm.doubted and vm.serves(fv))


def booted_count_of(vms: Iterable[VMRecord], fv: FunctionVersion) -> int:
    """VMs of this version that are booted and take calls (loading or bound)."""
    return sum(1 for vm in vms if vm.state in BOOTED_BOUND and vm.serves(fv))


def slots(fv: FunctionVersion, memory_budget_mib: int | None) -> int:
    """Calls one VM of ``fv`` may run at once.

    The function's concurrency, but never more calls than the guest can give
    their full memory cap at once beside its artifact: a guest that runs out of
    memory itself dies with every call in it, where a call hitting its cap fails alone.
    """
    if memory_budget_mib is None:
        return fv.config.concurrency
    budget = memory_budget_mib - artifact_mib(fv)
    return max(1, min(fv.config.concurrency, budget // fv.config.memory_mib))


def artifact_mib(fv: FunctionVersion) -> int:
    """Guest memory the artifact of ``fv`` holds, in whole MiB."""
    return -(-fv.artifact_bytes // (1024 * 1024))


def host_memory_mib(fv: FunctionVersion, memory_budget_mib: int, vm_memory_mib: int) -> int:
    """The host memory a VM bound to ``fv`` may hold: its worst case as a generic VM less
    the part of its guest's call budget that ``fv``'s slots can never use."""
    used = artifact_mib(fv) + slots(fv, memory_budget_mib) * fv.config.memory_mib
    unused = max(0, memory_budget_mib - used)
    return vm_memory_mib - unused


def pick_warm(
    vms: Iterable[VMRecord], fv: FunctionVersion, memory_budget_mib: int | None = None
) -> VMRecord | None:
    """A live loaded VM of ``fv`` with a free slot: the least busy, then the most recent."""
    limit = slots(fv, memory_budget_mib)
    warm = [
        vm
        for vm in vms
        if vm.state is VMState.BOUND
        and vm.serves(fv)
        and vm.in_flight < limit
        and not vm.doubted
        and vm.sandbox is not None
        and vm.sandbox.alive
    ]
    return min(warm, key=lambda v: (v.in_flight, -v.last_used)) if warm else None


def pick_idle(vms: Iterable[VMRecord]) -> VMRecord | None:
    idle = [vm for vm in vms if vm.state is VMState.IDLE and not vm.doubted]
    return min(idle, key=lambda v: v.id) if idle else None


def pick_booting_generic(vms: Iterable[VMRecord]) -> VMRecord | None:
    """A generic VM still booting that no call has claimed: the one started first."""
    booting = [vm for vm in vms if vm.state is VMState.BOOTING and vm.fv is None]
    return min(booting, key=lambda v: v.id) if booting else None


def pick_victim(
    vms: Iterable[VMRecord], fv: FunctionVersion, idle_before: float | None = None
) -> VMRecord | None:
    """The least recently used idle VM bound to another version; those above min_warm first.

    With ``idle_before``, only VMs last used before that time qualify.
    """
    vms = list(vms)
    candidates = [
        vm
        for vm in vms
        if vm.state is VMState.BOUND
        and not vm.serves(fv)
        and vm.in_flight == 0
        and (idle_before is None or vm.last_used <= idle_before)
    ]
    above = [
        vm
        for vm in candidates
        if vm.fv is not None and count_of(vms, vm.fv) > vm.fv.config.min_warm
    ]
    chosen = above or candidates
    return min(chosen, key=lambda v: v.last_used) if chosen else None


def expired(
    vms: Iterable[VMRecord], now: float, retired: Callable[[FunctionVersion], bool]
) -> list[VMRecord]:
    """Bound VMs idle past their keep-alive, oldest first, leaving each version its min_warm."""
    groups: dict[object, list[VMRecord]] = {}
    for vm in vms:
        if vm.state is VMState.BOUND and vm.fv is not None:
            groups.setdefault(vm.fv.ref, []).append(vm)
    out: list[VMRecord] = []
    for group in groups.values():
        fv = group[0].fv
        assert fv is not None
        keep = 0 if retired(fv) else fv.config.min_warm
        idle = sorted(
            (v for v in group if v.in_flight == 0 and now - v.last_used > fv.config.keep_alive_s),
            key=lambda v: v.last_used,
        )
        out.extend(idle[: max(0, len(group) - keep)])
    return out


def retiring(
    vms: Iterable[VMRecord], name: str, keep: FunctionRef | None
) -> tuple[list[VMRecord], list[VMRecord]]:
    """``name``'s VMs other than ``keep``'s: idle ones (stop now), busy ones (drain first)."""
    idle: list[VMRecord] = []
    busy: list[VMRecord] = []
    for vm in vms:
        fv = vm.fv
        if fv is None or fv.name != name or fv.ref == keep:
            continue
        if vm.in_flight == 0:
            idle.append(vm)
        elif vm.state is not VMState.DRAINING:
            busy.append(vm)
    return idle, busy


def pressure_victims(
    vms: Iterable[VMRecord], count: int, retired: Callable[[FunctionVersion], bool]
) -> list[VMRecord]:
    """Up to ``count`` idle VMs to stop when the host runs short of memory.

    Bound VMs above their version's min_warm go first, then generic idle VMs
    (a call that finds none boots one), then the min_warm ones, each group
    least recently used first. VMs with calls, or booting or loading, stay.
    """
    vms = list(vms)
    idle = [vm for vm in vms if vm.in_flight == 0 and vm.state in (VMState.IDLE, VMState.BOUND)]
    groups: dict[object, list[VMRecord]] = {}
    for vm in idle:
        if vm.fv is not None:
            groups.setdefault(vm.fv.ref, []).append(vm)
    spare: list[VMRecord] = []
    protected: list[VMRecord] = []
    for group in groups.values():
        fv = group[0].fv
        assert fv is not None
        busy = count_of(vms, fv) - len(group)  # its VMs that stay anyway
        keep = 0 if retired(fv) else max(0, fv.config.min_warm - busy)
        # The most recently used ones are those a version keeps.
        group.sort(key=lambda v: -v.last_used)
        protected.extend(group[:keep])
        spare.extend(group[keep:])
    generic = [vm for vm in idle if vm.fv is None]
    order = [
        *sorted(spare, key=lambda v: v.last_used),
        *sorted(generic, key=lambda v: v.id),
        *sorted(protected, key=lambda v: v.last_used),
    ]
    return order[: max(0, count)]


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
        if vm.fv is not None and vm.state in BOOTED_BOUND
    )
    estimate = call_estimate_s * (queue_depth + 1) / max(1, total)
    return max(1, min(math.ceil(queue_timeout_s), math.ceil(estimate)))
