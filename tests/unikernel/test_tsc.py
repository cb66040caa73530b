"""The host TSC frequency handed to TCG guests (so they keep time by the TSC, tickless)."""

from __future__ import annotations

import platform
import re
import time

import pytest

from tests.unikernel.test_argv import spec
from unikernel import tsc
from unikernel.argv import kernel_cmdline


@pytest.mark.skipif(platform.machine() != "x86_64", reason="rdtsc is x86-64's")
def test_host_tsc_frequency_is_read_and_handed_to_tcg_guests() -> None:
    khz = tsc.host_tsc_khz()
    assert khz is not None and 100_000 < khz < 10_000_000  # 0.1 to 10 GHz
    assert tsc.tcg_kernel_args() == f"tsc_early_khz={khz} tsc=reliable"
    # Measured again, the same to within 1%.
    tsc.host_tsc_khz.cache_clear()
    time.sleep(0.01)
    again = tsc.host_tsc_khz()
    assert again is not None and abs(again - khz) < khz / 100


def test_the_frequency_reaches_the_command_line_only_when_given() -> None:
    plain = kernel_cmdline(spec())
    assert "tsc_early_khz" not in plain
    given = kernel_cmdline(spec(tsc_kernel_args="tsc_early_khz=2000000 tsc=reliable"))
    assert re.search(r" tsc_early_khz=2000000 tsc=reliable", given)


def test_no_hint_where_rdtsc_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    tsc.host_tsc_khz.cache_clear()
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    try:
        assert tsc.host_tsc_khz() is None and tsc.tcg_kernel_args() == ""
    finally:
        tsc.host_tsc_khz.cache_clear()
