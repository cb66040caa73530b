"""Running a call again when its VM is lost: whether (:func:`may_retry`), and the loop
around a pool's attempts that keeps the call's own deadline (:func:`with_retries`).

A call's deadline is counted from when it reached the pool: as long as it may wait for
a slot (``PoolSettings.queue_timeout_s``) and then run (its function's timeout). Each
attempt waits for its slot only as long as that deadline leaves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable

from scheduler.errors import SandboxLost, SchedulerError
from scheduler.pool.status import Ran

# The shortest wait for a slot a run again is given, however little of the deadline is
# left (never more than queue_timeout_s): it was let run again, so it gets a fair chance.
MIN_WAIT_S = 1.0


def may_retry(
    error: SchedulerError,
    retries: int,
    *,
    made_effect: bool = False,
    max_retries: int = 3,
    time_left_s: float = math.inf,
) -> bool:
    """Whether a call that failed with ``error`` after ``retries`` retries runs again.

    Only when its VM was lost before it answered, and the call had made no hostcall with
    an effect outside the VM (a key-value write or delete, an outbound request): a
    function reaches nothing else outside its VM (no network device, a fresh copy of its
    files per call), so running it again elsewhere cannot do anything twice. Reads alone
    keep the retry. Again while the call's own deadline has time left, and at most
    ``max_retries`` times: faults that overlap in one call's life (two VMs killed under
    it, a kill while another VM is frozen) take more than one retry, but a function that
    kills its VM every time gets its error, not a loop. A function's own failures
    (timeout, trap, out of memory, exit code) are answers, never errors of the sandbox,
    so they never get here.
    """
    return (
        isinstance(error, SandboxLost)
        and retries < max_retries
        and time_left_s > 0
        and not made_effect
    )


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One run of a call: the first (``retries`` 0) or a run again after a lost VM."""

    retries: int
    wait_s: float  # how long it may wait for a slot


async def with_retries(
    attempt: Callable[[Attempt], Awaitable[Ran]],
    *,
    wait_s: float,
    run_s: float,
    max_retries: int,
    made_effect: Callable[[], bool],
    clock: Callable[[], float],
    retrying: Callable[[SandboxLost, int], None] = lambda err, retries: None,
) -> Ran:
    """``attempt`` until one answers or :func:`may_retry` says no (then its SandboxLost is
    raised, saying how many retries it had and whether the call made an effect);
    ``retrying(error, retries)`` before each run again."""
    deadline = clock() + wait_s + run_s
    retries = 0
    while True:
        left_s = deadline - clock()
        try:
            ran = await attempt(Attempt(retries, min(wait_s, max(MIN_WAIT_S, left_s - run_s))))
            return ran._replace(retries=retries)
        except SandboxLost as err:
            effect = made_effect()
            left_s = deadline - clock()
            if not may_retry(
                err, retries, made_effect=effect, max_retries=max_retries, time_left_s=left_s
            ):
                err.retries, err.after_effect = retries, effect
                raise
            retries += 1
            retrying(err, retries)
