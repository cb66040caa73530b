"""How many VMs a function should have, from the calls it has in flight, in the spirit of
Knative's KPA: a target of in-flight calls per VM (its concurrency at a utilisation below
1, so VMs are added before slots run out), averaged over a stable window, and a short panic
window that scales up at once when demand doubles, never scaling down while it lasts.

Pure: samples and clock come in, a decision goes out. The node's loop that samples the
calls, applies decisions and shows them in /metrics is :mod:`scheduler.scaling.autoscaler`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class ScalePolicy:
    target_utilization: float = 0.7  # of a VM's concurrency, the in-flight calls aimed at
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0  # panic when the panic window wants this many times the VMs
    tick_s: float = 1.0  # one sample per tick


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int  # VMs the function should have (within its min and max)
    stable_avg: float  # in-flight calls, averaged over the stable window
    panic_avg: float  # and over the panic window
    panic: bool


class FunctionScaler:
    """One function's samples and panic state."""

    def __init__(self, policy: ScalePolicy | None = None) -> None:
        self.policy = policy or ScalePolicy()
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._panic_since: float | None = None

    def observe(self, now: float, in_flight: float) -> None:
        self._samples.append((now, in_flight))
        horizon = now - self.policy.stable_window_s
        while self._samples and self._samples[0][0] <= horizon:
            self._samples.popleft()

    @property
    def idle(self) -> bool:
        """No call in the stable window: nothing to decide (scale to zero is keep-alive's)."""
        return all(n == 0 for _, n in self._samples)

    def decide(
        self, now: float, current: int, concurrency: int, min_vms: int, max_vms: int
    ) -> Decision:
        p = self.policy
        stable_avg = _mean(n for _, n in self._samples)
        panic_avg = _mean(n for t, n in self._samples if t > now - p.panic_window_s)
        per_vm = max(concurrency * p.target_utilization, 1e-9)
        stable_want = math.ceil(stable_avg / per_vm - 1e-9)
        panic_want = math.ceil(panic_avg / per_vm - 1e-9)
        if panic_want > current and panic_want >= p.panic_threshold * max(current, 1):
            self._panic_since = now
        panicking = self._panic_since is not None and now - self._panic_since < p.stable_window_s
        if not panicking:
            self._panic_since = None
        desired = max(current, panic_want, stable_want) if panicking else stable_want
        return Decision(
            desired=min(max(desired, min_vms), max_vms),
            stable_avg=stable_avg,
            panic_avg=panic_avg,
            panic=panicking,
        )


def _mean(values: Iterable[float]) -> float:
    total = count = 0.0
    for v in values:
        total += v
        count += 1
    return total / count if count else 0.0
