"""The bench comparison table."""

from __future__ import annotations

from loadtests.bench.burst import time_to_steady_s
from loadtests.bench.platform import server_timing
from loadtests.bench.report import comparison_table


def test_table_has_both_sides_and_ratios() -> None:
    result = {
        "calls": 300,
        "concurrency": 16,
        "rps": 45.9,
        "baseline_rps": 501.5,
        "warm_p50_ms": 11.32,
        "warm_p99_ms": 13.28,
        "baseline_p50_ms": 2.15,
        "baseline_p99_ms": 3.09,
        "prewarmed_start_ms_p50": 139.7,
        "cold_start_ms_p50": 1997.8,
        "warm_vm_ms_p50": 9.87,
        "host_path_ms_p50": 1.45,
    }
    table = comparison_table(result)
    assert "platform" in table and "baseline" in table
    assert "5.27x" in table  # p50 ratio
    assert "0.09x" in table  # throughput ratio
    assert "1997.8" in table
    assert "9.87" in table and "1.45" in table  # the p50 split: in the VM, outside it


def test_server_timing_metrics_are_read_by_name() -> None:
    header = "vm;dur=7.125, run;dur=0.210"
    assert server_timing(header, "vm") == 7.125
    assert server_timing(header, "run") == 0.21
    assert server_timing(header, "db") is None
    assert server_timing("", "vm") is None


def test_time_to_steady_is_the_first_second_after_the_last_slow_one() -> None:
    slow_start = [(0.1 * i, 3000.0) for i in range(20)]  # seconds 0 and 1: cold starts
    wobble = [(2.5, 40.0)]  # second 2: within 1.5x of steady
    late_spike = [(3.5, 90.0)]  # second 3: not
    steady = [(4.0 + 0.1 * i, 30.0) for i in range(80)]  # seconds 4-11
    p99, settled = time_to_steady_s(slow_start + wobble + late_spike + steady, 12.0)
    assert p99 == 30.0 and settled == 4.0
