"""An asyncio event loop whose clock jumps instead of waiting: tests of timing, in no time.

When nothing is ready to run and the next timer is due in ``t`` seconds, the
loop's clock moves ``t`` ahead at once instead of sleeping. Every sleep,
``wait_for`` and ``asyncio.wait(timeout=...)`` then takes no wall time, and
the order of events is exactly the one their deadlines give, whatever the
machine's load. Real I/O still works (it is polled first); with no timer at
all, the loop blocks on I/O as usual (a worker thread finishing, say).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready if ready or timeout is not None else super().select(None)
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def virtual_time(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an ``async def`` test (with its fixtures) on a virtual-time loop of its own.

    The wrapper is a plain function, which pytest-asyncio leaves alone, with the
    test's fixture parameters. A fixture value with a ``virtual_teardown``
    coroutine method is torn down on the same loop after the test, failed or not.
    """
    import functools
    import inspect

    async def body(*args: Any, **kwargs: Any) -> None:
        try:
            await test(*args, **kwargs)
        finally:
            for value in kwargs.values():
                teardown = getattr(value, "virtual_teardown", None)
                if teardown is not None:
                    await teardown()

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        run_virtual(body(*args, **kwargs))

    run.__signature__ = inspect.signature(test)  # type: ignore[attr-defined]
    del run.__wrapped__  # type: ignore[attr-defined]
    return run
