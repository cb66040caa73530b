"""The node's autoscaler: once a tick, every busy function's calls in flight (running or
waiting for a slot) are sampled, :mod:`scheduler.scaling.policy` decides how many VMs it should
have, and the pool is asked for the ones missing, before its slots run out.

Scaling down stays the keep-alive reclaim's: an idle VM above min_warm goes after
``keep_alive_s``, which is longer than the stable window by default. VMs are added only
while the function has calls in flight, so a keep-alive shorter than the stable window
is not undone by the window's memory of a burst that is over.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from scheduler.errors import FunctionNotFound, SchedulerError
from scheduler.model import FunctionVersion
from scheduler.pool.pool import ArtifactLoader, Pool
from scheduler.registry.nodecache import NodeCache
from scheduler.scaling.admission import Throttle
from scheduler.scaling.policy import Decision, FunctionScaler, ScalePolicy

log = logging.getLogger(__name__)


class Autoscaler:
    def __init__(
        self,
        pool: Pool,
        cache: NodeCache,
        throttle: Throttle,
        loader: Callable[[FunctionVersion], ArtifactLoader],
        policy: ScalePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool, self.cache, self.throttle, self._loader = pool, cache, throttle, loader
        self.policy = policy or ScalePolicy()
        self._clock = clock
        self._scalers: dict[str, FunctionScaler] = {}
        self.decisions: dict[str, Decision] = {}  # the latest, per busy function
        self.scale_ups: collections.Counter[str] = collections.Counter()
        self._growing: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.tick_s)
            try:
                await self.tick()
            except SchedulerError as err:  # Redis away: the next tick tries again
                log.warning("autoscaler tick skipped: %s", err)

    async def tick(self) -> None:
        now = self._clock()
        status = self.pool.status()
        for name in set(self.throttle.busy()) | set(self._scalers):
            scaler = self._scalers.setdefault(name, FunctionScaler(self.policy))
            in_flight = self.throttle.in_flight(name)
            scaler.observe(now, in_flight)
            if scaler.idle:
                del self._scalers[name]
                self.decisions.pop(name, None)
                continue
            try:
                fv = await self.cache.current(name)
            except FunctionNotFound:  # deleted while busy: nothing to scale
                del self._scalers[name]
                self.decisions.pop(name, None)
                continue
            current = sum(f.vms for f in status.functions if f.ref == fv.ref)
            config = fv.config
            decision = scaler.decide(
                now, current, config.concurrency, config.min_warm, config.max_vms
            )
            self.decisions[name] = decision
            if decision.desired > current and in_flight > 0:
                self.scale_ups[name] += 1
                self._grow(fv, decision.desired)

    def _grow(self, fv: FunctionVersion, count: int) -> None:
        task = asyncio.create_task(self.pool.ensure_min_warm(fv, self._loader(fv), count))
        self._growing.add(task)
        task.add_done_callback(self._grown)

    def _grown(self, task: asyncio.Task[None]) -> None:
        self._growing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("autoscaler: adding VMs failed: %s", task.exception())

    async def close(self) -> None:
        for task in list(self._growing):
            task.cancel()
        await asyncio.gather(*self._growing, return_exceptions=True)
