"""Summary statistics both benches use."""

from __future__ import annotations

import os
from pathlib import Path


def percentile(samples: list[float], pct: float) -> float:
    """The sample at rank ``pct`` % (nearest rank)."""
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[idx]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, from the state on (field 3);
    None once the process is gone. The name may hold spaces or parentheses: fields follow
    the last ')'."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process so far, in clock ticks (0 once it is gone)."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])  # utime + stime


def start_ticks(pid: int) -> int:
    """A process's start time (clock ticks since boot); gone: later than any."""
    fields = stat_fields(pid)
    return 1 << 62 if fields is None else int(fields[19])


def rss_kib(pid: int) -> int:
    """A process's resident memory in KiB (0 once it is gone)."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds(pid: int) -> int:
    """How many descriptors a process holds open (0 once it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
