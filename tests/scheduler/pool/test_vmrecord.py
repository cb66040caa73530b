"""The pool VM's state machine: every event in every state, against the one table."""

from __future__ import annotations

import itertools

import pytest

from scheduler.errors import InvalidTransition
from scheduler.model import FunctionConfig, FunctionVersion
from scheduler.pool.vmrecord import TRANSITIONS, Event, VMRecord, VMState

F = FunctionVersion("f", 1, "m", "x", None, FunctionConfig(), 0.0)
SANDBOX = object()


def in_state(state: VMState, *, bound: bool) -> VMRecord:
    """A VM in ``state``; ``bound``: claimed by a version (always so past LOADING)."""
    fv = F if bound or state in (VMState.LOADING, VMState.BOUND, VMState.DRAINING) else None
    return VMRecord(1, state, fv)


def fire(vm: VMRecord, event: Event) -> None:
    match event:
        case Event.CLAIM:
            vm.claim(F)
        case Event.BOOTED:
            vm.booted(SANDBOX, 5.0)  # type: ignore[arg-type]
        case Event.LOADED:
            vm.loaded(5.0)
        case Event.UNCLAIM:
            vm.unclaim()
        case Event.DRAIN:
            vm.drain()
        case Event.REMOVE:
            vm.remove()


@pytest.mark.parametrize(
    ("state", "event", "bound"),
    [
        (s, e, b)
        for s, e, b in itertools.product(VMState, Event, (False, True))
        if not (b and s is VMState.IDLE)
    ],
)
def test_every_event_follows_the_table(state: VMState, event: Event, bound: bool) -> None:
    vm = in_state(state, bound=bound)
    allowed = TRANSITIONS.get((state, event), frozenset())
    if event is Event.CLAIM and vm.fv is not None:
        allowed = frozenset()  # a VM bound to a version is never claimed by another
    if not allowed:
        with pytest.raises(InvalidTransition) as info:
            fire(vm, event)
        assert (info.value.vm_id, vm.state) == (1, state)  # nothing changed
        return
    fire(vm, event)
    assert vm.state in allowed


def test_generic_life() -> None:
    vm = VMRecord.booting(7, None)
    assert (vm.state, vm.in_flight) == (VMState.BOOTING, 0)
    vm.booted(SANDBOX, 1.0)  # type: ignore[arg-type]
    assert vm.state is VMState.IDLE and vm.boot_over.is_set()
    vm.claim(F)
    assert (vm.state, vm.fv, vm.in_flight) == (VMState.LOADING, F, 1)
    vm.unclaim()  # the call gave up before loading: still generic
    assert (vm.state, vm.fv, vm.in_flight) == (VMState.IDLE, None, 0)
    vm.claim(F)
    vm.loaded(2.0)
    assert vm.state is VMState.BOUND and vm.serves(F)
    vm.drain()
    vm.remove()
    assert vm.gone


def test_claimed_boot_goes_to_loading() -> None:
    vm = VMRecord.booting(1, None)
    vm.claim(F)
    assert (vm.state, vm.in_flight) == (VMState.BOOTING, 1)
    vm.booted(SANDBOX, 1.0)  # type: ignore[arg-type]
    assert vm.state is VMState.LOADING


def test_a_draining_vm_still_finishes_boot_and_load() -> None:
    vm = VMRecord.booting(1, F)
    vm.drain()
    vm.booted(SANDBOX, 1.0)  # type: ignore[arg-type]
    vm.loaded(2.0)
    assert vm.state is VMState.DRAINING


def test_gone_is_final() -> None:
    vm = VMRecord.booting(1, F)
    vm.remove()
    for event in Event:
        with pytest.raises(InvalidTransition):
            fire(vm, event)
