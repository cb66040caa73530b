"""Booting a pool VM's sandbox through the boot gate, counted and recorded on its
:class:`~scheduler.pool.vmrecord.VMRecord`; and waiting for a generic boot a call claimed.

Whatever fails here stops the VM (the pool's ``discard``) before the error goes up.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable

from scheduler.errors import PoolClosed, SandboxLost
from scheduler.pool import placement
from scheduler.pool.bootgate import BootGate, Priority, speculative
from scheduler.pool.sandbox import Sandbox, SandboxFactory
from scheduler.pool.vmrecord import VMRecord


class Booter:
    def __init__(
        self,
        factory: SandboxFactory,
        gate: BootGate,
        counters: collections.Counter[str],
        *,
        vms: Callable[[], Iterable[VMRecord]],
        discard: Callable[[VMRecord], object],
        closed: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self._factory, self._gate, self._counters = factory, gate, counters
        self._vms, self._discard, self._closed, self._clock = vms, discard, closed, clock

    async def boot(
        self,
        vm: VMRecord,
        victim_stop: asyncio.Task[None] | None = None,
        priority: Priority | None = None,
    ) -> None:
        """Boot ``vm`` (after the evicted VM's stop, if any) when the gate lets it."""
        try:
            if victim_stop is not None:
                await asyncio.wait({victim_stop})
            async with self._gate.slot(priority or self._priority(vm)):
                if vm.gone:
                    raise PoolClosed()
                # A cold start of a version restores its template, when one is held.
                boot = self._factory.boot(vm.fn_id)
                task = asyncio.create_task(boot, name=f"pool-boot-{vm.id}")
                vm.boot_task = task  # from here on, stop_sandbox owns whatever this boots
                await asyncio.wait({task})
                # Still holding the slot: the gate picks the next boot by booted
                # VMs per function, so this one must count before it lets go.
                self._booted(vm, task)
        except BaseException:
            self._discard(vm)
            raise

    async def claimed(self, vm: VMRecord) -> None:
        """Wait for the generic boot this call claimed; its own task does the booting."""
        try:
            await vm.boot_over.wait()
        except BaseException:
            self._discard(vm)
            raise
        if vm.gone or vm.sandbox is None:
            raise self.removed("the VM booting for this call failed")

    def removed(self, what: str) -> PoolClosed | SandboxLost:
        """Why a VM a call was waiting on left the pool: the pool closing, or the VM lost."""
        return PoolClosed() if self._closed() else SandboxLost(what)

    def _booted(self, vm: VMRecord, task: asyncio.Task[Sandbox]) -> None:
        if task.cancelled():
            raise PoolClosed()
        err = task.exception()
        if err is not None:
            self._counters["boot_failures"] += 1
            raise err
        sandbox = task.result()
        # A clone of a snapshot is counted apart from a boot (restores metric).
        self._counters["restores" if sandbox.restored else "boots"] += 1
        self._counters["preloaded"] += sandbox.preloaded is not None  # its version's template
        if vm.gone:
            raise self.removed("VM removed while booting")
        vm.booted(sandbox, self._clock())

    def _priority(self, vm: VMRecord) -> Priority:
        """Read when the gate asks: its version's booted VMs, or speculative while generic
        (a call may claim it as it waits)."""
        vms = self._vms()
        return lambda: speculative() if vm.fv is None else placement.booted_count_of(vms, vm.fv)
