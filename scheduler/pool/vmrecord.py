"""A pool VM's record and its state machine: one method per event, one table of transitions.

::

    BOOTING --booted--> IDLE --claim--> LOADING --loaded--> BOUND
       |  \\                 <--unclaim--'   |                  |
       |   `--booted (claimed for a call)-->'                  |
       +--claim (a call takes the boot) --> BOOTING             |
       `--drain--> DRAINING <--drain-- LOADING, BOUND ---------'
    any state --remove--> GONE

A VM bound to a version (LOADING, BOUND) only ever serves that version; a VM
leaving the pool is stopped, never made generic again. The one way back,
``unclaim``, is for a pre-warmed grant whose call gave up before the load
began: the VM never held the function, so it is still generic. A DRAINING VM
still finishes its boot and load (a call is waiting on it), but takes no new
calls and is removed when its last call ends.

Every change of ``state`` goes through :meth:`VMRecord._fire`, which checks the
table and raises :class:`~scheduler.errors.InvalidTransition` for anything else.

Apart from its state, the host may *doubt* a VM: a ping it sent has gone unanswered
for a while (``PoolSettings.doubt_after_s``). A doubted VM keeps its state and its
calls, but placement passes it by until it answers again; a VM that never does is
killed when the ping's own deadline passes. It is a flag and not a state because
it changes nothing else about the VM, in any state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging

from scheduler.errors import InvalidTransition
from scheduler.model import FunctionVersion, StartKind
from scheduler.pool.sandbox import Sandbox

log = logging.getLogger(__name__)


class VMState(enum.StrEnum):
    BOOTING = "booting"  # QEMU starting; generic, or already claimed for a version
    IDLE = "idle"  # generic: booted, no function loaded
    LOADING = "loading"  # booted and bound to one version, its load under way
    BOUND = "bound"  # loaded one version; serves only that
    DRAINING = "draining"  # no new calls; removed when its calls end
    GONE = "gone"  # out of the pool; stopped or being stopped


class Event(enum.StrEnum):
    CLAIM = "claim"  # a version takes a generic VM (idle, or still booting)
    BOOTED = "booted"  # its boot finished
    LOADED = "loaded"  # its version's load finished
    UNCLAIM = "unclaim"  # a claim that never began loading is handed back
    DRAIN = "drain"  # its version was retired while calls were in flight
    REMOVE = "remove"  # out of the pool (reclaimed, evicted, dead, failed, closing)


_S, _E = VMState, Event
# (state, event) -> the states it may lead to. Only BOOTED from BOOTING has two:
# IDLE for a generic VM, LOADING for one a version claimed while it booted.
TRANSITIONS: dict[tuple[VMState, Event], frozenset[VMState]] = {
    (_S.BOOTING, _E.CLAIM): frozenset({_S.BOOTING}),
    (_S.BOOTING, _E.BOOTED): frozenset({_S.IDLE, _S.LOADING}),
    (_S.BOOTING, _E.DRAIN): frozenset({_S.DRAINING}),
    (_S.IDLE, _E.CLAIM): frozenset({_S.LOADING}),
    (_S.LOADING, _E.LOADED): frozenset({_S.BOUND}),
    (_S.LOADING, _E.UNCLAIM): frozenset({_S.IDLE}),
    (_S.LOADING, _E.DRAIN): frozenset({_S.DRAINING}),
    (_S.BOUND, _E.DRAIN): frozenset({_S.DRAINING}),
    (_S.DRAINING, _E.BOOTED): frozenset({_S.DRAINING}),
    (_S.DRAINING, _E.LOADED): frozenset({_S.DRAINING}),
    **{(state, _E.REMOVE): frozenset({_S.GONE}) for state in VMState if state is not _S.GONE},
}

# States in which a VM counts against its version's max_vms (DRAINING ones do not).
TAKES_CALLS = frozenset({VMState.BOOTING, VMState.LOADING, VMState.BOUND})
# States of a booted VM bound to a version.
BOOTED_BOUND = frozenset({VMState.LOADING, VMState.BOUND})


@dataclasses.dataclass(eq=False)
class VMRecord:
    id: int
    state: VMState = VMState.BOOTING
    fv: FunctionVersion | None = None  # the version it is bound (or booting) for
    sandbox: Sandbox | None = None
    boot_task: asyncio.Task[Sandbox] | None = None
    stop_task: asyncio.Task[None] | None = None
    in_flight: int = 0  # reserved slots: calls running, or the boot/load before the first
    last_used: float = 0.0
    # Set when its boot is over, booted or not (a call that claimed it while booting waits).
    boot_over: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # The host's latest knowledge: a ping of it went unanswered (see the module's docstring).
    doubted: bool = False

    @classmethod
    def booting(cls, vm_id: int, fv: FunctionVersion | None) -> VMRecord:
        """A new VM: generic, or booting for ``fv`` with the first call's slot reserved."""
        return cls(vm_id, VMState.BOOTING, fv, in_flight=1 if fv else 0)

    @property
    def gone(self) -> bool:
        # A method, not an inline comparison, so type narrowing does not outlive an await.
        return self.state is VMState.GONE

    @property
    def fn_id(self) -> str | None:
        """The id of the version it is bound to, or None while generic."""
        return self.fv.key if self.fv is not None else None

    def serves(self, fv: FunctionVersion) -> bool:
        """Bound (or booting) for exactly this version."""
        return self.fv is not None and self.fv.ref == fv.ref

    def _fire(self, event: Event, target: VMState | None = None) -> None:
        """Move to the table's next state for ``event`` (``target`` picks among several)."""
        allowed = TRANSITIONS.get((self.state, event), frozenset())
        if target is None and len(allowed) == 1:
            (target,) = allowed
        if target is None or target not in allowed:
            raise InvalidTransition(self.id, self.state.value, event.value)
        self.state = target

    # -- events ---------------------------------------------------------------
    def claim(self, fv: FunctionVersion) -> None:
        """A call (or a min_warm top-up) of ``fv`` takes this generic VM, one slot reserved."""
        if self.fv is not None:
            raise InvalidTransition(self.id, f"{self.state.value} for {self.fv.key}", "claim")
        self._fire(Event.CLAIM)
        self.fv, self.in_flight = fv, 1

    def booted(self, sandbox: Sandbox, now: float) -> None:
        if self.state is VMState.BOOTING:
            self._fire(Event.BOOTED, VMState.IDLE if self.fv is None else VMState.LOADING)
        else:
            self._fire(Event.BOOTED)
        self.sandbox, self.last_used = sandbox, now
        self.boot_over.set()

    def loaded(self, now: float) -> None:
        self._fire(Event.LOADED)
        self.last_used = now

    def unclaim(self) -> None:
        self._fire(Event.UNCLAIM)
        self.fv, self.in_flight = None, 0

    def drain(self) -> None:
        self._fire(Event.DRAIN)

    def remove(self) -> None:
        self._fire(Event.REMOVE)
        self.boot_over.set()  # a call waiting on its boot sees it gone

    def doubt(self) -> None:
        """A ping of it has gone unanswered for a while (see the module's docstring)."""
        self.doubted = True

    def answered(self) -> None:
        """It answered a ping or a call: placement may take it again."""
        self.doubted = False

    # -- slots ----------------------------------------------------------------
    def reserve(self) -> None:
        self.in_flight += 1

    def release(self, now: float) -> None:
        self.in_flight -= 1
        self.last_used = now

    # -- the sandbox behind it ------------------------------------------------
    async def stop_sandbox(self) -> None:
        """Stop whatever this record started: its sandbox, or the boot that would give it one."""
        sandbox, task = self.sandbox, self.boot_task
        if task is not None:
            if not task.done():
                task.cancel()
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is None:
                sandbox = task.result()
        if sandbox is None:
            return
        try:
            await sandbox.stop()
        except Exception:
            log.exception("stopping VM %d failed", self.id)


@dataclasses.dataclass(frozen=True)
class Grant:
    """A slot the pool reserved on a VM for a call (or a warm-up), and how it starts."""

    vm: VMRecord
    kind: StartKind
    victim_stop: asyncio.Task[None] | None = None  # evicted VM; wait for it before booting
    claimed: bool = False  # cold: a generic VM already booting, not a boot of its own
