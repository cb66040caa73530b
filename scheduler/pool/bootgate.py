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

Speculative boots (generic VMs, min_warm and autoscaler VMs: no call waits on
them) have a limit of their own, the host's cores by default, whatever the
overall limit. Measured by ``bench density``: 300 functions deployed with
min_warm 1 started 282 restores at once on 2 cores; loads and pings then took
longer than their deadlines, VMs were killed as hung and replaced, and after
four minutes none was bound. A call's boot never waits for this limit.
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

    def __init__(self, limit: int | None, speculative_limit: int | None = None) -> None:
        self.limit = limit
        self.speculative_limit = speculative_limit
        self._running = 0
        self._running_speculative = 0
        self._waiting: dict[asyncio.Future[bool], tuple[int, Priority]] = {}
        self._seq = itertools.count()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        speculative = await self._acquire(priority)
        try:
            yield
        finally:
            self._release(speculative)

    def _free(self) -> bool:
        return self.limit is None or self._running < self.limit

    def _may_start(self, speculative: bool) -> bool:
        if not speculative or self.speculative_limit is None:
            return True
        return self._running_speculative < self.speculative_limit

    def _grant(self, speculative: bool) -> bool:
        self._running += 1
        self._running_speculative += speculative
        return speculative

    async def _acquire(self, priority: Priority) -> bool:
        """Wait for a slot; whether it was granted as a speculative one."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[future] = (next(self._seq), priority)
        self._serve()  # at once when a slot is free and no waiter ranks before it
        try:
            return await future
        except asyncio.CancelledError:
            if self._waiting.pop(future, None) is None and not future.cancelled():
                self._release(future.result())  # granted just as we were cancelled: pass it on
            raise

    def reranked(self) -> None:
        """A waiter's priority changed: serve again (a claimed generic boot may now go)."""
        self._serve()

    def _release(self, speculative: bool) -> None:
        self._running -= 1
        self._running_speculative -= speculative
        self._serve()

    def _serve(self) -> None:
        while self._waiting and self._free():
            # Read each priority once: a generic VM's changes when a call claims it.
            ranked = {f: (prio(), seq) for f, (seq, prio) in self._waiting.items()}
            eligible = [f for f, (p, _) in ranked.items() if self._may_start(p >= SPECULATIVE)]
            if not eligible:
                return
            future = min(eligible, key=ranked.__getitem__)
            del self._waiting[future]
            future.set_result(self._grant(ranked[future][0] >= SPECULATIVE))
