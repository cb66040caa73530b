"""The placement rules, table-driven on plain records: no VMs, no event loop, milliseconds."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.asyncq.worker import is_retryable
from scheduler.errors import CapacityExhausted, SandboxLost
from scheduler.model import FunctionConfig, FunctionVersion
from scheduler.pool import placement
from scheduler.pool.placement import Step
from scheduler.pool.retry import may_retry
from scheduler.pool.vmrecord import VMRecord, VMState

NOW = 1000.0


class Alive:
    """The one thing placement asks of a sandbox."""

    def __init__(self, alive: bool = True) -> None:
        self.alive = alive


def fv(name: str = "a", version: int = 1, **config: object) -> FunctionVersion:
    return FunctionVersion(name, version, "m", "x", None, FunctionConfig(**config), 0.0)


A, A2, B, C = fv("a"), fv("a", 2), fv("b"), fv("c")
A1SLOT = fv("a", concurrency=1)
AMAX1 = fv("a", max_vms=1, concurrency=1)
BWARM = fv("b", min_warm=1)


@dataclasses.dataclass(frozen=True)
class V:
    """One VM of a scenario: state, version, calls in flight, seconds since last use."""

    state: VMState
    fv: FunctionVersion | None = None
    in_flight: int = 0
    idle_s: float = 0.0
    alive: bool = True


def records(specs: list[V]) -> list[VMRecord]:
    out = []
    for i, spec in enumerate(specs, start=1):
        booted = spec.state is not VMState.BOOTING
        out.append(
            VMRecord(
                i,
                spec.state,
                spec.fv,
                sandbox=Alive(spec.alive) if booted else None,
                in_flight=spec.in_flight,
                last_used=NOW - spec.idle_s,
            )
        )
    return out


# (what, VMs on the node, version asked for, node max_vms, for a call?, expected
# step or None to queue, id of the VM taken (or evicted), 1-based)
S = VMState
CASES = [
    ("warm beats everything", [V(S.IDLE), V(S.BOUND, A)], A, 4, True, Step.WARM, 2),
    ("least busy warm VM", [V(S.BOUND, A, 2), V(S.BOUND, A, 1)], A, 4, True, Step.WARM, 2),
    (
        "a full VM is not warm",
        [V(S.BOUND, A1SLOT, 1), V(S.IDLE)],
        A1SLOT,
        4,
        True,
        Step.PREWARMED,
        2,
    ),
    ("a loading VM is not warm yet", [V(S.LOADING, A, 1)], A, 4, True, Step.BOOT, None),
    ("a dead VM is not warm", [V(S.BOUND, A, alive=False)], A, 4, True, Step.BOOT, None),
    ("another version is not warm", [V(S.BOUND, A2)], A, 4, True, Step.BOOT, None),
    ("a draining VM is not warm", [V(S.DRAINING, A)], A, 4, True, Step.BOOT, None),
    ("pre-warmed: oldest idle VM", [V(S.IDLE), V(S.IDLE)], A, 4, True, Step.PREWARMED, 1),
    ("claim a generic boot", [V(S.BOOTING)], A, 4, True, Step.CLAIM_BOOTING, 1),
    ("a claimed boot is not claimed twice", [V(S.BOOTING, B)], A, 4, True, Step.BOOT, None),
    ("idle beats a booting VM", [V(S.BOOTING), V(S.IDLE)], A, 4, True, Step.PREWARMED, 2),
    ("max_vms per function", [V(S.BOUND, AMAX1, 1), V(S.IDLE)], AMAX1, 4, True, None, None),
    ("booting VMs count to max_vms", [V(S.BOOTING, AMAX1), V(S.IDLE)], AMAX1, 4, True, None, None),
    (
        "draining VMs do not count",
        [V(S.DRAINING, AMAX1), V(S.IDLE)],
        AMAX1,
        4,
        True,
        Step.PREWARMED,
        2,
    ),
    (
        "full node: evict the LRU idle VM",
        [V(S.BOUND, B, idle_s=1), V(S.BOUND, C, idle_s=3)],
        A,
        2,
        True,
        Step.EVICT_AND_BOOT,
        2,
    ),
    ("never evict a busy VM", [V(S.BOUND, B, 1), V(S.BOUND, C, 1)], A, 2, True, None, None),
    (
        "evict above min_warm first",
        [V(S.BOUND, BWARM, idle_s=9), V(S.BOUND, C, idle_s=1)],
        A,
        2,
        True,
        Step.EVICT_AND_BOOT,
        2,
    ),
    (
        "min_warm is evicted when nothing else",
        [V(S.BOUND, BWARM, idle_s=9)],
        A,
        1,
        True,
        Step.EVICT_AND_BOOT,
        1,
    ),
    (
        "a function with a VM spares just-used VMs",
        [V(S.BOUND, A1SLOT, 1), V(S.BOUND, B, idle_s=1)],
        A1SLOT,
        2,
        True,
        None,
        None,
    ),
    (
        "... but takes one idle for a while",
        [V(S.BOUND, A1SLOT, 1), V(S.BOUND, B, idle_s=placement.EVICT_MIN_IDLE_S + 1)],
        A1SLOT,
        2,
        True,
        Step.EVICT_AND_BOOT,
        2,
    ),
    ("a warm-up never takes a warm slot", [V(S.BOUND, A)], A, 4, False, Step.BOOT, None),
    ("a warm-up never evicts", [V(S.BOUND, B, idle_s=60)], A, 1, False, None, None),
    (
        "loading and booting VMs are not evicted",
        [V(S.LOADING, B), V(S.BOOTING, C)],
        A,
        2,
        True,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("vms", "want", "max_vms", "for_call", "step", "vm_id"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_place(
    vms: list[V],
    want: FunctionVersion,
    max_vms: int,
    for_call: bool,
    step: Step | None,
    vm_id: int | None,
) -> None:
    recs = records(vms)
    decision = placement.place(
        recs, want, vm_limit=lambda: max_vms, memory_budget_mib=None, now=NOW, for_call=for_call
    )
    if step is None:
        assert decision is None
        return
    assert decision is not None and decision.step is step
    taken = decision.victim if step is Step.EVICT_AND_BOOT else decision.vm
    assert (taken.id if taken is not None else None) == vm_id


def test_memory_budget_limits_warm_slots() -> None:
    big = fv("a", concurrency=8, memory_mib=200)
    recs = records([V(S.BOUND, big, 2), V(S.IDLE)])
    warm = placement.place(recs, big, vm_limit=lambda: 4, memory_budget_mib=416, now=NOW)
    assert warm is not None and warm.step is Step.PREWARMED  # 416 // 200 = 2 slots, both taken
    unlimited = placement.place(recs, big, vm_limit=lambda: 4, memory_budget_mib=None, now=NOW)
    assert unlimited is not None and unlimited.step is Step.WARM


@pytest.mark.parametrize(
    ("concurrency", "memory_mib", "want"),
    [
        (4, 64, 624 - (416 - 4 * 64)),  # 4 slots of 64 MiB leave 160 of the budget unused
        (8, 200, 624 - (416 - 2 * 200)),  # the budget holds 2 slots of 200
        (1, 416, 624),  # one call may use the whole budget
        (1, 1024, 624),  # one slot even when the cap exceeds the budget: never above the ceiling
    ],
)
def test_host_memory_follows_the_function(concurrency: int, memory_mib: int, want: int) -> None:
    f = fv("a", concurrency=concurrency, memory_mib=memory_mib)
    assert placement.host_memory_mib(f, 416, 624) == want


def test_host_memory_counts_the_artifact_the_guest_holds() -> None:
    config = FunctionConfig(concurrency=4, memory_mib=64)
    f = FunctionVersion("a", 1, "m", "x", None, config, 0.0, artifact_bytes=100 * 1024 * 1024)
    # 416 - 100 holds 4 slots of 64: 60 of the budget unused.
    assert placement.host_memory_mib(f, 416, 624) == 624 - 60


def test_expired_keeps_min_warm_and_retires() -> None:
    keep1 = fv("a", min_warm=1, keep_alive_s=10)
    recs = records([V(S.BOUND, keep1, idle_s=30), V(S.BOUND, keep1, idle_s=20), V(S.BOUND, B)])
    assert [vm.id for vm in placement.expired(recs, NOW, lambda f: False)] == [1]
    assert [vm.id for vm in placement.expired(recs, NOW, lambda f: f.name == "a")] == [1, 2]


def test_retry_after_spreads_the_queue_over_slots() -> None:
    recs = records([V(S.BOUND, fv("a", concurrency=2)), V(S.LOADING, fv("b", concurrency=2))])
    assert placement.retry_after_s(recs, 39, 0.5, 30) == 5  # 40 calls * 0.5 s / 4 slots
    assert placement.retry_after_s(recs, 1000, 0.5, 30) == 30  # never past the queue timeout
    assert placement.retry_after_s([], 0, 0.01, 30) == 1


def test_retry_rule_learns_about_effects_deadlines_and_its_limit() -> None:
    lost = SandboxLost("gone")
    assert may_retry(lost, 0) and may_retry(lost, 2, max_retries=3)
    assert not may_retry(lost, 3, max_retries=3)
    assert not may_retry(lost, 0, time_left_s=0.0)
    assert not may_retry(lost, 0, made_effect=True)
    assert not may_retry(CapacityExhausted("full"), 0)
    # The async queue's rule agrees: a call lost after an effect is not queued again.
    assert is_retryable(lost)
    assert not is_retryable(SandboxLost("gone", after_effect=True))
