"""One shared thread that advances a wasmtime Engine's epoch while any call is running, and
runs each running call's per-tick check (its output caps)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar

import wasmtime

TICK_MS = 10  # epoch period; a timeout is enforced to within about one tick


def deadline_ticks(timeout_ms: int, tick_ms: int = TICK_MS) -> int:
    """Epoch ticks to allow for ``timeout_ms``.

    The first tick after a call starts may come at once (the ticker's phase is
    shared by all calls), hence the extra tick: a call never gets less than its
    timeout, and at most one tick more (plus scheduling delays).
    """
    return max(1, math.ceil(timeout_ms / tick_ms)) + 1


class EpochTicker:
    """Calls ``engine.increment_epoch()`` every ``tick_ms`` while at least one call is active.

    One thread per engine, not one per call (a thread per request is what made
    wasmtime serve 100x slower). When no call is active the thread blocks on a
    condition variable, so an idle guest spends no CPU on it.
    """

    _shared: ClassVar[dict[int, tuple[wasmtime.Engine, EpochTicker]]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, engine: wasmtime.Engine) -> EpochTicker:
        """The one ticker of ``engine`` at the default period, for every runtime on it (two
        tickers on one engine would advance its epoch twice as fast). Never closed: it
        idles on a condition when no call runs."""
        with cls._shared_lock:
            entry = cls._shared.get(id(engine))
            if entry is None:
                entry = cls._shared[id(engine)] = (engine, cls(engine))
            return entry[1]

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = engine
        self._period_s = tick_ms / 1000
        self._cond = threading.Condition()
        self._active = 0
        self._ticks = 0
        self._idle = False
        self._watches: dict[int, Callable[[], None]] = {}
        self._next_watch = 0
        self._thread = threading.Thread(target=self._run, name="epoch-ticker", daemon=True)
        self._thread.start()

    @property
    def ticks(self) -> int:
        """Epoch increments done so far (for tests and stats)."""
        return self._ticks

    def running(self, watch: Callable[[], None] | None = None) -> _Running:
        """Keep the epoch advancing for the duration of the block, calling ``watch`` (which
        must be quick and may raise only OSError) after every tick."""
        return _Running(self, watch)

    def _enter(self, watch: Callable[[], None] | None) -> int:
        with self._cond:
            self._active += 1
            key = self._next_watch
            self._next_watch += 1
            if watch is not None:
                self._watches[key] = watch
            if self._idle:
                # Only an idle ticker needs waking; one between ticks will see this call
                # at its next tick, and waking it per call costs each call a thread switch.
                self._cond.notify_all()
        return key

    def _exit(self, key: int) -> None:
        with self._cond:
            self._active -= 1
            self._watches.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._active == 0:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
            time.sleep(self._period_s)  # calls starting meanwhile do not shorten the period
            with self._cond:
                watches = list(self._watches.values())
            self._engine.increment_epoch()
            self._ticks += 1
            for watch in watches:
                with contextlib.suppress(OSError):
                    watch()


class _Running:
    # A class, not a generator-based context manager: entered on every call, where in a
    # TCG guest a generator's setup and teardown cost more than the work.
    __slots__ = ("_key", "_ticker", "_watch")

    def __init__(self, ticker: EpochTicker, watch: Callable[[], None] | None) -> None:
        self._ticker = ticker
        self._watch = watch
        self._key = -1

    def __enter__(self) -> None:
        self._key = self._ticker._enter(self._watch)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ticker._exit(self._key)
