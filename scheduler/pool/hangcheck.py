"""Finding hung VMs: every VM waiting for work is pinged on a period; one that misses the
deadline is killed and leaves the pool (calls on a frozen VM are bounded by the shim's own
call deadline, ``VMSettings.call_grace_s``, and then run again elsewhere).

The deadlines come from a measurement on this project's 2-core TCG machine, with
two other VMs running eight CPU-bound calls (both cores saturated): an idle VM's
ping took p50 2.1 ms, p99 8.9 ms, at most 10 ms over 200 pings. The default
deadline, 5 s, is 500 times the worst of those: a VM that misses it is frozen,
not slow.
"""

from __future__ import annotations

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
    does not answer within ``timeout_s``."""

    def __init__(
        self,
        vms: Callable[[], Iterable[VMRecord]],
        hung: Callable[[VMRecord], None],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        *,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self._vms, self._hung, self._spawn = vms, hung, spawn
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self._next_at = 0.0
        self._pinging: set[int] = set()

    def tick(self, now: float) -> None:
        """Start the pings that are due (call it often; it does nothing between periods)."""
        if now < self._next_at:
            return
        self._next_at = now + self.interval_s
        for vm in list(self._vms()):
            if (
                vm.state in WAITING
                and vm.in_flight == 0
                and vm.sandbox is not None
                and vm.id not in self._pinging
            ):
                self._pinging.add(vm.id)
                self._spawn(self._ping(vm))

    async def _ping(self, vm: VMRecord) -> None:
        sandbox = vm.sandbox
        assert sandbox is not None
        try:
            with translated():
                await sandbox.ping(self.timeout_s)
        except UnifaasError as err:  # SandboxLost, or the sandbox's own (timeout, ...)
            if not vm.gone:
                log.warning("VM %d missed its ping (%s): replacing it", vm.id, err)
                self._hung(vm)
        finally:
            self._pinging.discard(vm.id)
