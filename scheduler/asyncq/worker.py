"""A node's share of the async queue: it reads calls as one consumer of the nodes' group, runs
them on its own platform, and keeps each call's ending.

- At most ``concurrency`` calls of the queue run here at once; the node reads
  only as many entries as it has room for.
- While a call runs, its entry's claim is renewed every fifth of the visibility
  timeout (``claim_idle_s``); entries no node has renewed for that long are
  taken over: their node died, and the call is run again (a new attempt).
- A call that fails for a platform reason (:data:`RETRYABLE`) is retried after
  a backoff (``retry_backoff_s``, doubled each time) until its attempts are used
  up; then it is dead. The function's own failures (timeout, trap, ...) are its
  answer: ``failed``, not retried.
- Redis away: what a call must write is retried with backoff; the call itself is
  not run again for it.
- Stopping: no more reads; the calls running get ``drain_s`` to end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from scheduler.asyncq.callback import check_callback, deliver
from scheduler.asyncq.queue import AsyncQueue, AsyncStatus, Entry, Gone, StoredResponse
from scheduler.errors import (
    CapacityExhausted,
    InvalidCallback,
    NoNodeAvailable,
    PoolClosed,
    SandboxError,
    SandboxLost,
    StateStoreError,
    Throttled,
)
from scheduler.settings import AsyncSettings
from scheduler.state.store import until_reachable
from wasm_runtime.errors import UnifaasError

log = logging.getLogger(__name__)

# Failures of the platform, not of the function: worth another attempt later.
RETRYABLE: tuple[type[UnifaasError], ...] = (
    SandboxError,
    CapacityExhausted,
    Throttled,
    PoolClosed,
    StateStoreError,
    NoNodeAvailable,
)
READ_BLOCK_MS = 1000
# Due retries are looked for this often (their backoff is this much late at most).
PROMOTE_S = 0.5
# Consumers of nodes gone this long, with nothing pending, leave the group.
CONSUMER_IDLE_S = 3600.0
PRUNE_EVERY_S = 300.0

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Ran:
    """A call's run: the response the sync call would have had, and its error if it failed."""

    response: StoredResponse
    error: UnifaasError | None = None


# (call id, function, the request as queued) -> the run
Runner = Callable[[str, str, bytes], Awaitable[Ran]]


def is_retryable(err: UnifaasError | None) -> bool:
    if isinstance(err, SandboxLost) and err.after_effect:
        return False  # it may have written or sent something: once is all it gets
    return isinstance(err, RETRYABLE)


class AsyncWorker:
    """An async context manager: entering starts reading the queue, leaving drains and stops."""

    def __init__(
        self,
        queue: AsyncQueue,
        run: Runner,
        consumer: str,
        settings: AsyncSettings,
        *,
        drain_s: float = 30.0,
    ) -> None:
        self.queue = queue
        self.run = run
        self.consumer = consumer  # this node's id
        self.settings = settings
        self.drain_s = drain_s
        self.counts: collections.Counter[str] = collections.Counter()
        self._running: dict[str, Entry] = {}  # entry id -> entry, of the calls running here
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._room = asyncio.Event()
        self._stopping = False
        self._http = httpx.AsyncClient(timeout=settings.callback_timeout_s, follow_redirects=False)

    @property
    def running(self) -> int:
        return len(self._running)

    async def __aenter__(self) -> AsyncWorker:
        with contextlib.suppress(StateStoreError):  # Redis away: the reader makes it later
            await self.queue.ensure_group()
        self._loops = [
            asyncio.create_task(self._read_loop(), name="async-read"),
            asyncio.create_task(self._housekeeping(), name="async-housekeeping"),
        ]
        return self

    def stop_reading(self) -> None:
        self._stopping = True
        self._room.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_reading()
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_s)
            for task in pending:
                task.cancel()  # their entries stay pending: another node takes them over
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.warning("%d async calls left to other nodes at stop", len(pending))
        await self._http.aclose()

    # -- loops ------------------------------------------------------------------------
    def _free(self) -> int:
        return self.settings.concurrency - len(self._running)

    async def _read_loop(self) -> None:
        while not self._stopping:
            if self._free() <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            entries = await until_reachable(
                lambda: self.queue.read(self.consumer, self._free(), READ_BLOCK_MS),
                "async queue unreadable",
                log,
            )
            for entry in entries:
                self._take(entry)

    async def _housekeeping(self) -> None:
        renew_s = self.settings.claim_idle_s / 5
        renewed = claimed = pruned = time.monotonic()
        while True:
            await asyncio.sleep(PROMOTE_S)
            now = time.monotonic()
            try:
                await self.queue.promote_due()
                if now - renewed >= renew_s:
                    renewed = now
                    await self.queue.touch(self.consumer, list(self._running))
                if now - claimed >= renew_s and self._free() > 0 and not self._stopping:
                    claimed = now
                    abandoned = await self.queue.claim_abandoned(
                        self.consumer, self.settings.claim_idle_s, self._free()
                    )
                    for entry in abandoned:
                        self.counts["claimed"] += 1
                        log.info("async call %s taken over from a silent node", entry.call_id)
                        self._take(entry)
                if now - pruned >= PRUNE_EVERY_S:
                    pruned = now
                    await self.queue.forget_idle_consumers(CONSUMER_IDLE_S)
            except StateStoreError as err:
                log.debug("async housekeeping: %s", err)

    # -- one call ---------------------------------------------------------------------
    def _take(self, entry: Entry) -> None:
        if entry.entry_id in self._running:
            return  # claimed back what this node already runs
        self._running[entry.entry_id] = entry
        task = asyncio.create_task(self._handle(entry), name=f"async-{entry.call_id}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(entry, t))

    def _done(self, entry: Entry, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._running.pop(entry.entry_id, None)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("async call %s: %r", entry.call_id, task.exception())

    async def _handle(self, entry: Entry) -> None:
        begun = await self._persist(lambda: self.queue.start(entry, self.consumer))
        if isinstance(begun, Gone):
            if begun.dead_reason is None:
                self.counts["stale"] += 1
                return
            self.counts["dead"] += 1
            log.warning("async call %s is dead: %s", entry.call_id, begun.dead_reason)
            await self._callback(entry.call_id)
            return
        self.counts["started"] += 1
        ran = await self.run(entry.call_id, begun.function, begun.request)
        if is_retryable(ran.error):
            delay = self.settings.retry_backoff_s * 2 ** (begun.attempt - 1)
            after = await self._persist(
                lambda: self.queue.retry(entry, time.time() + delay, str(ran.error), ran.response)
            )
            if after is AsyncStatus.QUEUED:
                self.counts["retried"] += 1
                log.info("async call %s: retry in %g s (%s)", entry.call_id, delay, ran.error)
                return
            if after is None:
                self.counts["duplicate"] += 1
                return
            self.counts["dead"] += 1
        else:
            status = AsyncStatus.SUCCEEDED if ran.error is None else AsyncStatus.FAILED
            error = None if ran.error is None else str(ran.error)
            kept = await self._persist(
                lambda: self.queue.finish(entry, status, ran.response, error)
            )
            if not kept:
                self.counts["duplicate"] += 1  # ended already, from a node thought dead
                return
            self.counts[status.value] += 1
        if begun.callback_url:
            await self._callback(entry.call_id)

    async def _persist(self, write: Callable[[], Awaitable[T]]) -> T:
        """Redis away: try again until it is back. On stop the task is cancelled, and the
        entry stays pending for another node."""
        return await until_reachable(write, "async queue write failed", log)

    async def _callback(self, call_id: str) -> None:
        call = await self._persist(lambda: self.queue.get(call_id))
        if call is None or not call.callback_url:
            return
        try:
            check_callback(call.callback_url, self.settings.allowed_callback_hosts)
        except InvalidCallback as err:
            outcome = f"not sent: {err}"
        else:
            outcome = await deliver(
                self._http, call, call.response, attempts=self.settings.callback_attempts
            )
        self.counts["callback " + outcome.split(" ")[0].rstrip(":")] += 1
        await self._persist(lambda: self.queue.set_callback(call_id, outcome))
