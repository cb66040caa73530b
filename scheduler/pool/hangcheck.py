"""Finding hung VMs: every VM waiting for work is pinged on a period; one that misses the
deadline is killed and leaves the pool (calls on a frozen VM are bounded by the shim's own
call deadline, ``VMSettings.call_grace_s``, and then run again elsewhere).

The deadlines come from a measurement on this project's 2-core TCG machine, with
two other VMs running eight CPU-bound calls (both cores saturated): an idle VM's
ping took p50 2.1 ms, p99 8.9 ms, at most 10 ms over 200 pings. The default
deadline, 5 s, is 500 times the worst of those: a VM that misses it is frozen,
not slow. Well before that, after 1 s (100 times the worst), the VM is *doubted*:
no new call is placed on it while it may be frozen, and a call that runs again
after its VM was lost asks the VM it is given for a ping first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from scheduler.pool.sandbox import translated
from scheduler.pool.vmrecord import VMRecord, VMState
from wasm_runtime.errors import UnifaasError

log = logging.getLogger(__name__)

# States of a VM that waits for work; others are busy booting, loading or leaving.
WAITING = frozenset({VMState.IDLE, VMState.BOUND})


class HealthCheck:
    """Pings the idle VMs ``vms()`` gives every ``interval_s``; ``hung(vm)`` for each that
    does not answer within ``timeout_s``. One not answering within ``doubt_after_s`` is
    doubted meanwhile (placement passes it by), and trusted again when it answers."""

    def __init__(
        self,
        vms: Callable[[], Iterable[VMRecord]],
        hung: Callable[[VMRecord], None],
        spawn: Callable[[Coroutine[Any, Any, bool]], asyncio.Task[Any]],
        *,
        interval_s: float,
        timeout_s: float,
        doubt_after_s: float,
    ) -> None:
        self._vms, self._hung, self._spawn = vms, hung, spawn
        self.interval_s, self.timeout_s, self.doubt_after_s = interval_s, timeout_s, doubt_after_s
        self.doubts = 0  # times a VM became doubted
        self._next_at = 0.0
        self._pings: dict[int, asyncio.Task[bool]] = {}  # by VM id: at most one at a time

    def tick(self, now: float) -> None:
        """Start the pings that are due (call it often; it does nothing between periods)."""
        if now < self._next_at:
            return
        self._next_at = now + self.interval_s
        for vm in list(self._vms()):
            if vm.state in WAITING and vm.in_flight == 0 and vm.sandbox is not None:
                self._pinged(vm)

    async def answers(self, vm: VMRecord) -> bool:
        """Whether ``vm`` answers a ping within ``doubt_after_s`` (a call about to run again
        asks this of the VM it was given). One that does not is doubted; its ping goes on
        to ``timeout_s``, as any other."""
        ping = self._pinged(vm)
        done, _ = await asyncio.wait({ping}, timeout=self.doubt_after_s)
        if ping in done and not ping.cancelled():
            return ping.result()
        self._doubt(vm)  # its own ping's timer may not have fired yet
        return False

    def _doubt(self, vm: VMRecord) -> None:
        if not vm.doubted:
            self.doubts += 1
        vm.doubt()

    def _pinged(self, vm: VMRecord) -> asyncio.Task[bool]:
        """The VM's ping under way, or a new one."""
        ping = self._pings.get(vm.id)
        if ping is None:
            ping = self._pings[vm.id] = self._spawn(self._ping(vm))
        return ping

    async def _ping(self, vm: VMRecord) -> bool:
        sandbox = vm.sandbox
        assert sandbox is not None
        doubt = asyncio.get_running_loop().call_later(self.doubt_after_s, self._doubt, vm)
        try:
            with translated():
                await sandbox.ping(self.timeout_s)
        except UnifaasError as err:  # SandboxLost, or the sandbox's own (timeout, ...)
            if not vm.gone:
                log.warning("VM %d missed its ping (%s): replacing it", vm.id, err)
                self._hung(vm)
            return False
        finally:
            doubt.cancel()
            self._pings.pop(vm.id, None)
        vm.answered()
        return True
