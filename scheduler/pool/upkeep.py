"""The pool's upkeep, once per reclaim tick: stop bound VMs idle past their keep-alive,
stop idle VMs while the host is short of memory, and bring each function's min_warm
back when its VMs died or could not start (the node was full when it was deployed).

It also keeps the host-memory estimate of the next VM current
(:class:`scheduler.pool.capacity.HostMemory`), from a sample of the newest booted VMs:
they are the clones of the templates now held, the VMs the next start resembles.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from scheduler.model import ArtifactLoader, FunctionRef, FunctionVersion
from scheduler.pool import placement
from scheduler.pool.capacity import SAMPLE_VMS, HostMemory
from scheduler.pool.vmrecord import VMRecord, VMState

log = logging.getLogger(__name__)


async def periodic(interval_s: float, tick: Callable[[], None], what: str) -> None:
    """Call ``tick`` every ``interval_s`` until cancelled; its failures are logged, not fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            tick()
        except Exception:
            log.exception("%s failed", what)


# Longest wait between tries to bring back min_warm VMs that failed to start.
REWARM_BACKOFF_MAX_S = 60.0

Ensure = Callable[[FunctionVersion, ArtifactLoader], Awaitable[None]]


class KeepAlive:
    def __init__(
        self,
        vms: Callable[[], Iterable[VMRecord]],
        discard: Callable[[VMRecord], asyncio.Task[None]],
        retired: Callable[[FunctionVersion], bool],
        memory: HostMemory | None,
        counters: collections.Counter[str],
    ) -> None:
        self._vms, self._discard, self._retired = vms, discard, retired
        self.memory = memory
        self._counters = counters
        # Stops started for memory and not over: their memory is not back yet.
        self._relieving: set[asyncio.Task[None]] = set()
        # Function name -> its current version with a min_warm, and how to load it.
        self._wants: dict[str, tuple[FunctionVersion, ArtifactLoader]] = {}
        self._ensure: Ensure | None = None
        # Function name -> (no new try before, the delay that gave it) after a failure.
        self._backoff: dict[str, tuple[float, float]] = {}
        self._spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None

    def keep_min_warm(
        self, ensure: Ensure, spawn: Callable[[Coroutine[Any, Any, None]], object]
    ) -> None:
        """How min_warm VMs are brought back: ``ensure(fv, load)``, run by ``spawn``."""
        self._ensure, self._spawn = ensure, spawn

    def want(self, fv: FunctionVersion, load: ArtifactLoader) -> None:
        """Keep ``fv``'s min_warm VMs from now on."""
        self._wants[fv.name] = (fv, load)

    def retire(self, name: str, keep: FunctionRef | None) -> None:
        """``name``'s versions other than ``keep`` no longer get min_warm VMs."""
        wanted = self._wants.get(name)
        if wanted is not None and wanted[0].ref != keep:
            del self._wants[name]

    def tick(self, now: float) -> int:
        """Stop expired VMs (keeping each version's min_warm), then relieve memory pressure;
        returns how many VMs went for their keep-alive."""
        expired = placement.expired(self._vms(), now, self._retired)
        for vm in expired:
            self._discard(vm)
        self._counters["reclaims"] += len(expired)
        if self.memory is not None:
            self._observe(self.memory)
            self._relieve(self.memory)
        self._rewarm(now)
        return len(expired)

    def _rewarm(self, now: float) -> None:
        if self._ensure is None or self._spawn is None:
            return
        vms = list(self._vms())
        for fv, load in self._wants.values():
            # Booting and loading VMs count: a start under way is not asked for twice.
            due = now >= self._backoff.get(fv.name, (0.0, 0.0))[0]
            if due and placement.count_of(vms, fv) < fv.config.min_warm:
                self._spawn(self._logged(self._ensure(fv, load), fv, now))

    async def _logged(self, ensuring: Awaitable[None], fv: FunctionVersion, now: float) -> None:
        try:
            await ensuring
        except Exception as err:
            # A version whose VMs cannot start is tried again later and later, not every tick.
            delay = min(REWARM_BACKOFF_MAX_S, 2 * self._backoff.get(fv.name, (0.0, 0.5))[1])
            self._backoff[fv.name] = (now + delay, delay)
            log.warning(
                "bringing back %s's min_warm VMs failed (again in %gs): %s", fv.key, delay, err
            )
        else:
            self._backoff.pop(fv.name, None)

    def _observe(self, memory: HostMemory) -> None:
        booted = [
            vm
            for vm in self._vms()
            if vm.sandbox is not None and vm.state in (VMState.IDLE, VMState.BOUND)
        ]
        newest = sorted(booted, key=lambda vm: -vm.id)[:SAMPLE_VMS]
        memory.observe(vm.sandbox.private_kib() for vm in newest if vm.sandbox is not None)

    def _relieve(self, memory: HostMemory) -> None:
        self._relieving = {task for task in self._relieving if not task.done()}
        short = memory.shortfall_vms() - len(self._relieving)
        if short <= 0:
            return
        victims = placement.pressure_victims(self._vms(), short, self._retired)
        for vm in victims:
            self._relieving.add(self._discard(vm))
        self._counters["pressure_evictions"] += len(victims)
        if victims:
            log.warning(
                "host memory low (%d MiB available, reserve %d MiB): stopped %d idle VM(s)",
                memory.available_mib(),
                memory.reserve_mib,
                len(victims),
            )
