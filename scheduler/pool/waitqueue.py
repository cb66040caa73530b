"""The calls waiting for a VM slot: oldest first, each a future the pool fulfils with a grant.

The queue knows nothing of VMs: the pool decides what a grant is (``serve``)
and what to do with one handed back by a call that gave up (``leave``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from scheduler.model import FunctionVersion

G = TypeVar("G")


@dataclasses.dataclass(eq=False)
class Waiter(Generic[G]):
    fv: FunctionVersion
    future: asyncio.Future[G]


class WaitQueue(Generic[G]):
    def __init__(self) -> None:
        self._waiters: collections.deque[Waiter[G]] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def join(self, fv: FunctionVersion) -> Waiter[G]:
        waiter: Waiter[G] = Waiter(fv, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        return waiter

    async def wait(self, waiter: Waiter[G], timeout_s: float) -> G | None:
        """The grant, or None when ``timeout_s`` passed first (the waiter is still queued:
        the caller must ``leave``, and so must it when this raises)."""
        done, _ = await asyncio.wait({waiter.future}, timeout=timeout_s)
        return waiter.future.result() if done else None

    def leave(self, waiter: Waiter[G]) -> G | None:
        """Take a waiter that gives up out of the queue; returns a grant it got meanwhile."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        future = waiter.future
        if not future.done():
            future.cancel()
            return None
        if future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def serve(self, grant_for: Callable[[FunctionVersion], G | None]) -> None:
        """Give each waiter, oldest first, the grant ``grant_for`` finds for it, if any."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            grant = grant_for(waiter.fv)
            if grant is not None:
                self._waiters.remove(waiter)
                waiter.future.set_result(grant)

    def fail_all(self, error: BaseException) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)
