"""Stopping what the pool no longer needs, once per reclaim tick: bound VMs idle past
their keep-alive, and idle VMs while the host is short of memory.

It also keeps the host-memory estimate of the next VM current
(:class:`scheduler.capacity.HostMemory`), from a sample of the newest booted VMs:
they are the clones of the templates now held, the VMs the next start resembles.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable

from scheduler import placement
from scheduler.capacity import SAMPLE_VMS, HostMemory
from scheduler.model import FunctionVersion
from scheduler.vmrecord import VMRecord, VMState

log = logging.getLogger(__name__)


async def periodic(interval_s: float, tick: Callable[[], None], what: str) -> None:
    """Call ``tick`` every ``interval_s`` until cancelled; its failures are logged, not fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            tick()
        except Exception:
            log.exception("%s failed", what)


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
        return len(expired)

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
