"""The pool's answers as typed values: how a call ran, and the pool's status (what
telemetry, the dashboard, the heartbeat, ``describe`` and the CLI read). JSON is made
from them at the HTTP edge."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from scheduler.model import FunctionRef, StartKind
from scheduler.pool.capacity import MemoryStatus
from scheduler.pool.vmrecord import VMRecord, VMState
from wasm_runtime.types import InvocationResult


class Ran(NamedTuple):
    """How a call went through the pool."""

    result: InvocationResult
    start: StartKind  # of the attempt that answered
    retries: int = 0  # attempts before it whose VM was lost
    vm_ms: float = 0.0  # the answering attempt's round trip to its VM, as the host saw it


@dataclasses.dataclass(frozen=True)
class FunctionVMs:
    """The VMs of one function version on this node."""

    ref: FunctionRef
    vms: int  # booting, loading, bound or draining for this version
    in_flight: int  # calls running on them (and boots/loads reserved for calls)
    draining: int
    free_slots: int = 0  # calls its bound VMs take now without waiting


@dataclasses.dataclass(frozen=True)
class TemplateCounts:
    held: int  # per-version templates kept by the factory
    making: int  # being made now (each one a QEMU of its own)


@dataclasses.dataclass(frozen=True)
class PoolStatus:
    vms: int  # in any state but gone
    max_vms: int
    memory: MemoryStatus | None  # admission by available memory (None: not admitted by it)
    booting: int
    idle: int
    loading: int
    bound: int
    draining: int
    queue_depth: int  # calls waiting for a slot
    boots_waiting: int  # boots waiting for the boot gate
    boots: int  # VMs booted (the snapshot template is not one of them)
    restores: int  # VMs started as clones of a snapshot template
    preloaded: int  # of which clones of their version's template, the function loaded
    templates: int  # per-version templates held
    templates_making: int  # being made now, each by a QEMU of its own
    boot_failures: int
    evictions: int
    reclaims: int
    pressure_evictions: int  # idle VMs stopped while memory was below the reserve
    deaths: int
    retries: int  # calls run again on another VM after theirs was lost
    hung: int  # VMs killed for missing a ping deadline
    doubts: int  # times a VM was passed by for a ping unanswered past doubt_after_s
    starts: Mapping[StartKind, int]
    rss_kib: int  # resident memory of every QEMU of the pool
    closed: bool
    functions: tuple[FunctionVMs, ...]  # by function version

    def of(self, name: str) -> tuple[FunctionVMs, ...]:
        """The versions of one function that have VMs here."""
        return tuple(f for f in self.functions if f.ref.name == name)

    def by_state(self) -> dict[str, int]:
        return {
            "booting": self.booting,
            "idle": self.idle,
            "loading": self.loading,
            "bound": self.bound,
            "draining": self.draining,
        }


def summarize(
    vms: Sequence[VMRecord],
    *,
    max_vms: int,
    memory: MemoryStatus | None,
    queue_depth: int,
    boots_waiting: int,
    templates: TemplateCounts,
    counters: Mapping[str, int],
    starts: Mapping[StartKind, int],
    closed: bool,
) -> PoolStatus:
    """The status of a pool holding ``vms`` (none of them gone)."""
    by_state = collections.Counter(vm.state for vm in vms)
    per_version: dict[FunctionRef, list[VMRecord]] = {}
    for vm in vms:
        if vm.fv is not None:
            per_version.setdefault(vm.fv.ref, []).append(vm)
    return PoolStatus(
        vms=len(vms),
        max_vms=max_vms,
        memory=memory,
        booting=by_state[VMState.BOOTING],
        idle=by_state[VMState.IDLE],
        loading=by_state[VMState.LOADING],
        bound=by_state[VMState.BOUND],
        draining=by_state[VMState.DRAINING],
        queue_depth=queue_depth,
        boots_waiting=boots_waiting,
        boots=counters.get("boots", 0),
        restores=counters.get("restores", 0),
        preloaded=counters.get("preloaded", 0),
        templates=templates.held,
        templates_making=templates.making,
        boot_failures=counters.get("boot_failures", 0),
        evictions=counters.get("evictions", 0),
        reclaims=counters.get("reclaims", 0),
        pressure_evictions=counters.get("pressure_evictions", 0),
        deaths=counters.get("deaths", 0),
        retries=counters.get("retries", 0),
        hung=counters.get("hung", 0),
        doubts=counters.get("doubts", 0),
        starts=dict(starts),
        rss_kib=sum(vm.sandbox.rss_kib() for vm in vms if vm.sandbox is not None),
        closed=closed,
        functions=tuple(
            FunctionVMs(
                ref=ref,
                vms=len(group),
                in_flight=sum(vm.in_flight for vm in group),
                draining=sum(vm.state is VMState.DRAINING for vm in group),
                free_slots=sum(
                    max(0, vm.fv.config.concurrency - vm.in_flight)
                    for vm in group
                    if vm.state is VMState.BOUND and vm.fv is not None
                ),
            )
            for ref, group in sorted(per_version.items())
        ),
    )
