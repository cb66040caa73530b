"""Invocation records written in batches, in the background, and kept while Redis is away.

A call's record is queued (never awaited on the call's path); a writer task
stores what is queued in one round trip, and when the state store is
unreachable keeps the records and tries again with backoff. The queue is
bounded: past it the oldest records are dropped, and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging

from scheduler.model import InvocationRecord
from scheduler.registry.registry import Registry
from scheduler.state.store import until_reachable

log = logging.getLogger(__name__)

BUFFER_MAX = 10_000  # records kept while Redis is away (~0.5 KiB each)
BATCH_MAX = 500
# How long the writer gathers records before a round trip: one write per call cost a
# sixth of a warm call's host time (measured with py-spy under sequential load); this
# makes it one per 50 ms, and a record shows in `unifaas logs` that much later.
GATHER_S = 0.05


class RecordWriter:
    def __init__(self, registry: Registry, buffer_max: int = BUFFER_MAX) -> None:
        self.registry = registry
        self._buffer: collections.deque[InvocationRecord] = collections.deque()
        self._buffer_max = buffer_max
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # set while nothing is queued
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # records lost to a full buffer
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, record: InvocationRecord) -> None:
        if len(self._buffer) >= self._buffer_max:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(record)
        self._drained.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="record-writer")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._buffer) < BATCH_MAX:
                await asyncio.sleep(GATHER_S)
            self._wake.clear()
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(BATCH_MAX, len(self._buffer)))]
                await until_reachable(
                    functools.partial(self.registry.record_invocations, batch),
                    "invocation records kept on the node",
                    log,
                )
                sent = {id(r) for r in batch}  # the oldest may have been dropped meanwhile
                while self._buffer and id(self._buffer[0]) in sent:
                    self._buffer.popleft()
                self.written += len(batch)
            self._drained.set()

    async def flush(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until what is queued is written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout_s)

    async def close(self, timeout_s: float = 2.0) -> None:
        await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
