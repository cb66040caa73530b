"""The soak in its two-minute form against a real `unifaas up`: sync calls, hostcalls and async
calls with a deploy and a rollback every 30 s and a serving QEMU killed every 45 s; nothing
may be lost, and every window reports its resources. The hour-long runs are in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.soak import TRACKED, Schedule, platform_target, run_soak, slope, table


def test_slope_is_the_least_squares_one() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [4, 4, 4]) == 0.0
    assert slope([1.0], [5.0]) == 0.0


@pytest.mark.vm
def test_a_two_minute_soak_loses_nothing(tmp_path: Path) -> None:
    schedule = Schedule(duration_s=120, window_s=30, churn_every_s=30, kill_every_s=45)
    with platform_target("up", tmp_path) as target:
        report = run_soak(target, schedule, progress=lambda _: None)
    print(table(report))
    assert report.lost == 0, report.failed
    assert len(report.windows) == 4
    for window in report.windows:
        assert window.calls > 0 and window.async_calls > 0
        assert window.qemus > 0 and window.fds > 0 and window.rss_mib > 0
        assert window.redis_mib > 0
    assert report.deploys >= 3 and report.rollbacks >= 3 and report.kills >= 2
    assert set(report.slopes_per_hour) == set(TRACKED)
