"""The call a thread is running, for host functions that wasmtime calls without it.

A call runs on one thread from start to end, so a thread-local names it; host functions
(the core-module hostcalls, the component host) read it instead of a process-wide slot.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadCall(Generic[T]):
    """One kind of per-call state, current per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def running(self, call: T) -> _Running[T]:
        """Make ``call`` this thread's current one for the duration of the block."""
        return _Running(self._local, call)

    def get(self) -> T | None:
        call: T | None = getattr(self._local, "call", None)
        return call


class _Running(Generic[T]):
    # A class, not a generator-based context manager: entered on every call, where in a
    # TCG guest a generator's setup and teardown cost more than the work.
    __slots__ = ("_call", "_local")

    def __init__(self, local: threading.local, call: T) -> None:
        self._local = local
        self._call = call

    def __enter__(self) -> T:
        self._local.call = self._call
        return self._call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._local.call = None
