"""A node's membership: its record in Redis, refreshed every beat and expiring a few beats
after the last, and removed when the node stops (gateways then place no more calls on it,
while the calls it holds finish)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from types import TracebackType

from scheduler.errors import StateStoreError
from scheduler.model import NodeRecord, WarmVersion
from scheduler.roles.platform import Platform

log = logging.getLogger(__name__)

# A node's record outlives this many missed heartbeats; then gateways drop it.
HEARTBEATS_TO_LIVE = 3
LEAVE_WAIT_S = 2.0


def record_of(platform: Platform, url: str, started_at: float) -> NodeRecord:
    """What the node says of itself now."""
    status = platform.pool.status()
    free = status.max_vms - status.vms
    if status.memory is not None:
        free = min(free, status.memory.room)
    return NodeRecord(
        id=platform.node_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        url=url,
        started_at=started_at,
        seen_at=time.time(),
        vms=status.vms,
        max_vms=status.max_vms,
        queue_depth=status.queue_depth,
        room=status.idle + max(0, free),
        in_flight=sum(f.in_flight for f in status.functions) + status.queue_depth,
        warm=tuple(
            WarmVersion(str(f.ref), f.vms, f.in_flight, f.free_slots)
            for f in status.functions
            if f.vms > f.draining
        ),
    )


class Heartbeat:
    """An async context manager: beats while entered, leaves the cluster on the way out."""

    def __init__(self, platform: Platform, url: str, interval_s: float) -> None:
        self.platform = platform
        self.url = url  # where gateways reach this node
        self.interval_s = interval_s
        self.started_at = time.time()
        self._task: asyncio.Task[None] | None = None

    def record(self) -> NodeRecord:
        return record_of(self.platform, self.url, self.started_at)

    async def beat(self) -> None:
        await self.platform.registry.register_node(
            self.record(), self.interval_s * HEARTBEATS_TO_LIVE
        )

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._run(), name="node-heartbeat")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._leave()

    async def _leave(self) -> None:
        try:
            await asyncio.wait_for(
                self.platform.registry.unregister_node(self.platform.node_id), LEAVE_WAIT_S
            )
        except (StateStoreError, TimeoutError) as err:
            log.warning("could not leave the cluster (%s): the record expires instead", err)

    async def _run(self) -> None:
        """Beat until cancelled; an unreachable state store costs beats, not the heartbeat."""
        reachable = True
        while True:
            try:
                await self.beat()
                if not reachable:
                    log.warning("heartbeat: state store reachable again")
                reachable = True
            except StateStoreError as err:
                if reachable:
                    log.warning("heartbeat: state store unreachable (%s); still beating", err)
                reachable = False
            await asyncio.sleep(self.interval_s)
