"""Summary statistics both benches use."""

from __future__ import annotations

from pathlib import Path


def percentile(samples: list[float], pct: float) -> float:
    """The sample at rank ``pct`` % (nearest rank)."""
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[idx]


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process so far, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime
