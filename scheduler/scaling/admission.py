"""Per-function admission on a node: a cap on calls in flight and a calls-per-second rate, so
one function's flood gets 429s of its own instead of every function's slots and queue."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from scheduler.errors import Throttled
from scheduler.model import Admission


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float

    def take(self, rate: float, burst: int, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        self.tokens = min(float(burst), self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._buckets: dict[str, _Bucket] = {}

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def busy(self) -> list[str]:
        """Functions with calls in flight now."""
        return list(self._in_flight)

    @contextmanager
    def admit(self, name: str, limits: Admission) -> Iterator[None]:
        """Hold one of the function's places for the block, or raise Throttled."""
        in_flight = self._in_flight.get(name, 0)
        if in_flight >= limits.max_in_flight:
            raise Throttled(
                f"function {name!r} has {in_flight} calls in flight, its limit "
                f"(max_in_flight {limits.max_in_flight})",
            )
        if limits.rate is not None:
            now = self._clock()
            bucket = self._buckets.setdefault(name, _Bucket(float(limits.burst), now))
            wait_s = bucket.take(limits.rate, limits.burst, now)
            if wait_s > 0:
                raise Throttled(
                    f"function {name!r} is over its rate limit ({limits.rate:g} calls/s)",
                    retry_after_s=max(1, math.ceil(wait_s)),
                )
        self._in_flight[name] = in_flight + 1
        try:
            yield
        finally:
            left = self._in_flight[name] - 1
            if left:
                self._in_flight[name] = left
            else:
                del self._in_flight[name]

    def forget(self, name: str) -> None:
        """Drop a deleted function's rate state (calls in flight release their own)."""
        self._buckets.pop(name, None)
