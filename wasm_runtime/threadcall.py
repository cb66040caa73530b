"""The call a thread is running, for host functions that wasmtime calls without it.

A call runs on one thread from start to end, so a thread-local names it; host functions
(the core-module hostcalls, the component host) read it instead of a process-wide slot.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadCall(Generic[T]):
    """One kind of per-call state, current per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def running(self, call: T) -> Iterator[T]:
        """Make ``call`` this thread's current one for the duration of the block."""
        self._local.call = call
        try:
            yield call
        finally:
            self._local.call = None

    def get(self) -> T | None:
        call: T | None = getattr(self._local, "call", None)
        return call
