"""Summary statistics both benches use."""

from __future__ import annotations


def percentile(samples: list[float], pct: float) -> float:
    """The sample at rank ``pct`` % (nearest rank)."""
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[idx]
