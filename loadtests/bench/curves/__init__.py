"""``unifaas bench curves``: how cost grows with module size, concurrency, the number of
functions and versions, and nodes, each drawn with its baseline from the same run.

Every curve starts its own platform (or cluster), so one can run alone (``--only``). The
results go to ``OUT/curves.json`` (every point as measured) and ``OUT/NAME.png``;
``--quick`` runs each curve at two or three points, as the test suite does. With
``--only``, the other curves already in ``OUT/curves.json`` are kept.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtests.bench.curves.catalog import catalog_curve
from loadtests.bench.curves.concurrency import concurrency_curve
from loadtests.bench.curves.model import Curve
from loadtests.bench.curves.nodes import nodes_curve
from loadtests.bench.curves.plot import draw
from loadtests.bench.curves.size import size_curve

Progress = Callable[[str], None]
CURVES = ("size", "concurrency", "catalog", "nodes")
KIB, MIB = 1000, 1024 * 1024
FULL: dict[str, Any] = {
    "sizes": [10 * KIB, 100 * KIB, MIB, 10 * MIB, 50 * MIB, 100 * MIB],
    "levels": [1, 2, 4, 8, 16, 32, 64],
    "spreads": [1, 10, 100],
    "window_s": 4.0,
    "warm_calls": 40,
    "catalog": [1, 10, 100, 1000],
    "nodes": [1, 2, 3],
    "node_window_s": 15.0,
    "examples": True,
}
QUICK: dict[str, Any] = {
    "sizes": [10 * KIB, MIB],
    "levels": [1, 2],
    "spreads": [1, 2],
    "window_s": 0.5,
    "warm_calls": 3,
    "catalog": [1, 3],
    "nodes": [1],
    "node_window_s": 2.0,
    "examples": False,
}


def bench_curves(only: list[str], out_dir: Path, quick: bool, progress: Progress) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    report: dict[str, Any] = {"quick": quick, "curves": {}, "seconds": {}}
    kept = out_dir / "curves.json"
    if only and kept.exists():  # the curves not run again keep their last measurement
        last = json.loads(kept.read_text())
        if last.get("quick") == quick:
            report = last
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-curves-") as tmp:
        root = Path(tmp)
        for name in only or CURVES:
            started = time.monotonic()
            curve = _measure(name, root, plan, progress)
            report["curves"][name] = curve.to_json()
            report["seconds"][name] = round(time.monotonic() - started, 1)
            progress(f"curves: {name} drawn in {draw(curve, out_dir)}")
            (out_dir / "curves.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def redraw(out_dir: Path, progress: Progress) -> None:
    """Draw the PNGs again from ``OUT/curves.json``, measuring nothing."""
    report = json.loads((out_dir / "curves.json").read_text())
    for data in report["curves"].values():
        progress(f"curves: drawn in {draw(Curve.from_json(data), out_dir)}")


def _measure(name: str, root: Path, plan: dict[str, Any], progress: Progress) -> Curve:
    if name == "size":
        return asyncio.run(size_curve(root, plan["sizes"], plan["examples"], progress))
    if name == "concurrency":
        return asyncio.run(
            concurrency_curve(
                root,
                plan["levels"],
                plan["spreads"],
                plan["window_s"],
                plan["warm_calls"],
                progress,
            )
        )
    if name == "catalog":
        return asyncio.run(catalog_curve(root, plan["catalog"], progress))
    if name == "nodes":
        return nodes_curve(plan["nodes"], 8, plan["node_window_s"], progress)
    raise ValueError(f"no curve {name!r}; there are {', '.join(CURVES)}")
