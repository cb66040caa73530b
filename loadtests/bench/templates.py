"""``unifaas bench templates``: each template of ``unifaas new`` from nothing to its first
answer through ``unifaas up``, as a new user goes (toolchains already installed), then its
warm p50 through the platform beside the raw echo module's in the same run (the baseline).

For each template: seconds of new, build, deploy and the first call (which includes the
cold start), the module's size, and warm p50 of POST calls carrying a small body.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from devkit import scaffold, toolchains
from loadtests.errors import BenchError
from loadtests.launch import Served, platform_process

Progress = Callable[[str], None]
BODY = b"hello"
SLOW_S = 900


def _timed(served: Served, *args: str, cwd: Path) -> float:
    started = time.perf_counter()
    done = served.cli(*args, cwd=cwd, timeout=SLOW_S)
    if done.returncode != 0:
        raise BenchError(f"unifaas {' '.join(args)}: {done.stderr.decode()[-800:]}")
    return time.perf_counter() - started


def _warm_p50(url: str, name: str, calls: int) -> float:
    with httpx.Client(base_url=url, timeout=60) as c:
        times = []
        for i in range(calls + 5):
            started = time.perf_counter()
            r = c.post(f"/fn/{name}/a", content=BODY)
            if r.status_code != 200:
                raise BenchError(f"{name}: {r.status_code} {r.text[:200]}")
            if i >= 5:
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)


def bench_templates(
    calls: int = 50, only: list[str] | None = None, progress: Progress = print
) -> dict[str, Any]:
    names = only or [t.name for t in scaffold.TEMPLATE_LIST]
    for name in names:
        toolchain = toolchains.get(scaffold.get(name).toolchain)
        if not toolchain.installed():
            raise BenchError(f"unifaas toolchain install {toolchain.name} first")
    result: dict[str, Any] = {"calls": calls}
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-templates-") as tmp:
        work = Path(tmp)
        state = work / "state"
        state.mkdir()
        with platform_process(state, max_vms=6) as served:
            progress("templates: the raw echo module (the baseline)")
            scaffold.create(scaffold.get("wat"), "baseline", work / "baseline")
            for step in (("build", "-q"), ("deploy",)):
                _timed(served, *step, cwd=work / "baseline")
            result["baseline_wat_warm_p50_ms"] = round(_warm_p50(served.url, "baseline", calls), 2)
            for name in names:
                fn = f"t-{name}"
                progress(f"templates: {name}: new, build, deploy, first call")
                seconds = {
                    "new": _timed(served, "new", fn, "--template", name, cwd=work),
                    "build": _timed(served, "build", "-q", cwd=work / fn),
                    "deploy": _timed(served, "deploy", cwd=work / fn),
                    "first_call": _timed(served, "invoke", fn, "--data", "x", cwd=work / fn),
                }
                module = next((work / fn).rglob(f"{fn}.wasm"))
                warm = _warm_p50(served.url, fn, calls)
                result[name] = {
                    **{f"{k}_s": round(v, 2) for k, v in seconds.items()},
                    "to_first_answer_s": round(sum(seconds.values()), 1),
                    "module_bytes": module.stat().st_size,
                    "warm_p50_ms": round(warm, 2),
                    "warm_ratio_to_baseline": round(warm / result["baseline_wat_warm_p50_ms"], 2),
                }
    return result


def table(result: dict[str, Any]) -> str:
    """The README's table of the result."""
    lines = [
        "| template | new to first answer | build | deploy | first call | module | warm p50 "
        "(x raw WAT baseline) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result.items():
        if not isinstance(row, dict):
            continue
        size = row["module_bytes"]
        shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
        lines.append(
            f"| `{name}` | {row['to_first_answer_s']} s | {row['build_s']} s | "
            f"{row['deploy_s']} s | {row['first_call_s']} s | {shown} | "
            f"{row['warm_p50_ms']} ms (x{row['warm_ratio_to_baseline']}) |"
        )
    lines.append(f"\nbaseline: the wat template, warm p50 {result['baseline_wat_warm_p50_ms']} ms")
    return "\n".join(lines)
