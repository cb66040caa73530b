"""How many microVMs boot at once, and which boot goes first.

Under TCG a boot is seconds of CPU. Started all at once, N boots on C cores
each take about N/C boot times, so the first call waiting on one waits as long
as the last. Measured on this project's 2-core machine with nothing else
running, six boots started together were all ready after 15.3 s; two at a
time, the first was ready after 3.4 s and the mean was 7.1 s. Under load the
trade turns: in the capacity load test (8 users, 4 functions, 6 VMs) a limit
of 2 served 15-25% more calls, but the boots queued behind it shared the CPU
with the warm traffic of functions already served, and the last function's
first call waited 21-23 s instead of 13-14 s. So the limit is a setting
(``UNIFAAS_BOOT_CONCURRENCY``), off by default.

Which boot goes first, decided each time a slot frees: the boot of the
function with the fewest booted VMs (0: its calls can run nowhere else), so
every function gets its first VM before any gets its second; generic VMs kept
for pre-warmed starts last, since no call waits for them. Ties: first come,
first served. Without it, a function whose calls came first could hold every
slot with its scale-out boots while another function had no VM at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

# Lower goes first. A call's boot: how many booted VMs its function has now.
Priority = Callable[[], int]
SPECULATIVE = 1 << 30


def speculative() -> int:
    return SPECULATIVE


class BootGate:
    """A semaphore of ``limit`` slots whose waiters are served lowest priority first."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._running = 0
        self._waiting: dict[asyncio.Future[None], tuple[int, Priority]] = {}
        self._seq = itertools.count()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    def _free(self) -> bool:
        return self.limit is None or self._running < self.limit

    async def _acquire(self, priority: Priority) -> None:
        if self._free() and not self._waiting:
            self._running += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[future] = (next(self._seq), priority)
        try:
            await future
        except asyncio.CancelledError:
            if self._waiting.pop(future, None) is None and not future.cancelled():
                self._release()  # granted just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        self._running -= 1
        while self._waiting and self._free():
            future = min(self._waiting, key=lambda f: (self._waiting[f][1](), self._waiting[f][0]))
            del self._waiting[future]
            self._running += 1
            future.set_result(None)
