"""Async calls: the queue in Redis and each call's life (:mod:`~scheduler.asyncq.queue`), a
node's worker that runs its share of them (:mod:`~scheduler.asyncq.worker`), and the optional
callback when one ends (:mod:`~scheduler.asyncq.callback`).

May import: ``state`` and the shared modules (the worker runs calls through a function it is
given, so it needs no pool).
"""

from scheduler.asyncq.queue import AsyncCall, AsyncQueue, AsyncStatus, QueueStats, StoredResponse
from scheduler.asyncq.worker import AsyncWorker, Ran

__all__ = [
    "AsyncCall",
    "AsyncQueue",
    "AsyncStatus",
    "AsyncWorker",
    "QueueStats",
    "Ran",
    "StoredResponse",
]
