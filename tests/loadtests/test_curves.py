"""``unifaas bench curves --quick``: every curve measured for real (platforms, a cluster,
QEMU) at two points or so, its JSON and PNGs written, each with its baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.bench.curves import CURVES, bench_curves, redraw
from loadtests.bench.curves.sized import sized_module

pytestmark = pytest.mark.vm

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_quick_curves_are_measured_written_and_drawn(tmp_path: Path) -> None:
    out = tmp_path / "curves"
    report = bench_curves([], out, quick=True, progress=print)
    assert json.loads((out / "curves.json").read_text()) == report
    for name in CURVES:
        assert (out / f"{name}.png").read_bytes().startswith(PNG), name
        curve = report["curves"][name]
        assert curve["points"], name
        series = [s for panel in curve["panels"] for s in panel["series"]]
        assert all(None not in s["ys"] for s in series), name
        assert all(p.get("failed", 0) == 0 and "refused" not in p for p in curve["points"])
    for name in CURVES:  # drawn again from the JSON alone
        (out / f"{name}.png").unlink()
    redraw(out, progress=print)
    assert all((out / f"{name}.png").read_bytes().startswith(PNG) for name in CURVES)
    # Baselines measured in the same run, where there is one.
    for name in ("size", "concurrency"):
        panels = report["curves"][name]["panels"]
        assert any(s["baseline"] and s["xs"] for p in panels for s in p["series"]), name


def test_a_sized_module_has_the_size_asked_and_runs() -> None:
    import wasmtime

    for size in (0, 5000, 300_000):
        wasm = sized_module(size)
        assert abs(len(wasm) - max(size, 446)) < 64, (size, len(wasm))
        wasmtime.Module.validate(wasmtime.Engine(), wasm)
