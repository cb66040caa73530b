"""Deploy time, the first (cold) call, a call restored from the version's own template,
and an idle VM's memory (PSS) against module size: generated echo modules from 10 KB up
(loadtests.bench.curves.sized), and the examples as they are built (WAT, components by
componentize-py and jco). The baseline, per module, in this process: compiling it with
wasmtime and its first call in-process (no VM, no HTTP)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.component import CALLS, PAYLOAD, _examples, _idle_pss_mib
from loadtests.bench.curves.drive import Progress, client, deploy, platform
from loadtests.bench.curves.model import Curve, Panel, Series
from loadtests.bench.curves.sized import sized_module
from loadtests.bench.platform import until_templated
from loadtests.errors import BenchError
from wasm_runtime.engine import precompile
from wasm_runtime.runner import FunctionRuntime
from wasm_runtime.types import HttpRequest, Invocation, Limits

MIB = 1024 * 1024
BODY = PAYLOAD  # JSON: the Python and JS examples parse it


async def _start(c: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    r = await c.post(path, content=BODY)
    elapsed = (time.perf_counter() - started) * 1000
    if r.status_code != 200 or r.headers.get("x-start") != "cold":
        raise BenchError(f"{path}: wanted a cold start, got {r.status_code} {r.text[:200]}")
    return elapsed


def _native(wasm: bytes, component: bool, path: str) -> tuple[float, float]:
    """(compile ms, first call ms) in this process."""
    started = time.perf_counter()
    artifact = precompile(wasm)
    compiled = (time.perf_counter() - started) * 1000
    with FunctionRuntime() as runtime:
        fn = runtime.load(artifact)
        inv = (
            Invocation(
                request=HttpRequest("POST", "/", body=BODY), limits=Limits(timeout_ms=60_000)
            )
            if component
            else Invocation(
                stdin=BODY, limits=Limits(timeout_ms=60_000, memory_bytes=len(wasm) + 64 * MIB)
            )
        )
        started = time.perf_counter()
        result = runtime.invoke(fn, inv)
        if not result.ok:
            raise BenchError(f"in-process call failed: {result.message}")
        return compiled, (time.perf_counter() - started) * 1000


async def size_curve(root: Path, sizes: list[int], examples: bool, progress: Progress) -> Curve:
    # (label, module, a component?, the path it answers at)
    modules: list[tuple[str, bytes, bool, str]] = [
        (f"{n // 1000} KB" if n < MIB else f"{n // MIB} MiB", sized_module(n), False, "")
        for n in sizes
    ]
    generated = len(modules)
    if examples:
        progress("size: building the examples (componentize-py, jco)")
        for name, wasm in _examples().items():
            sub = CALLS[name].removeprefix(f"/fn/{name}")
            modules.append((name, wasm, name != "echo", sub))
    ex_deploy, ex_cold, ex_template, ex_pss = (
        Series(f"examples: {what}", points_only=True)
        for what in ("deploy", "cold start", "from template", "PSS")
    )
    deploy_s, cold, template, pss = (Series(s) for s in ("deploy (s)", "cold", "template", "pss"))
    compile_s, first = (
        Series("compile in-process", baseline=True),
        Series("in-process", baseline=True),
    )
    curve = Curve(
        "size",
        "Cost against module size",
        "module size (MiB)",
        [
            Panel("deploy (ms)", [deploy_s, compile_s, ex_deploy], log_y=True),
            Panel("start (ms)", [cold, template, first, ex_cold, ex_template], log_y=True),
            Panel("VM PSS after its call (MiB)", [pss, ex_pss]),
        ],
        log_x=True,
    )
    deploy_s.label, compile_s.label = "deploy through the API", "compile in-process"
    cold.label, template.label, first.label = (
        "cold start (first call)",
        "start from its template",
        "first call in-process",
    )
    pss.label = "generated modules"
    with platform(root / "size", max_vms=2) as (served, token):
        async with client(served.url, token) as c:
            # The platform's first start boots a VM and makes the generic template every
            # later first start is restored from: not a cost of the first module's size.
            await deploy(c, "prime", sized_module(0), keep_alive_s=0.5)
            await _start(c, "/fn/prime")
            await until_templated(c, "prime@1", 1, timeout_s=120)
            templates = 1
            for i, (label, wasm, component, sub) in enumerate(modules):
                x = round(len(wasm) / MIB, 4)
                name = f"size-{i}"
                memory_mib = max(64, len(wasm) // MIB + 64)
                point: dict[str, Any] = {"module": label, "bytes": len(wasm)}
                try:
                    point["deploy_ms"] = round(
                        1000
                        * await deploy(
                            c, name, wasm, keep_alive_s=0.5, memory_mib=memory_mib, timeout_s=60
                        ),
                        1,
                    )
                    point["cold_ms"] = round(await _start(c, f"/fn/{name}{sub}"), 1)
                    templates += 1
                    await until_templated(c, f"{name}@1", templates, timeout_s=120)
                    point["template_ms"] = round(await _start(c, f"/fn/{name}{sub}"), 1)
                    point["idle_pss_mib"] = round(_idle_pss_mib(served.proc.pid), 1)
                except BenchError as err:
                    point["refused"] = str(err)[:300]
                compiled, in_process = _native(wasm, component, sub or "/")
                point["compile_in_process_ms"] = round(compiled, 1)
                point["first_call_in_process_ms"] = round(in_process, 2)
                progress(f"size: {label}: {point}")
                curve.points.append(point)
                if "refused" in point:
                    curve.notes.append(f"{label}: {point['refused']}")
                    continue
                if i >= generated:
                    curve.notes.append(f"{label}: {len(wasm) / MIB:.2f} MiB")
                    ex_deploy.add(x, point["deploy_ms"])
                    ex_cold.add(x, point["cold_ms"])
                    ex_template.add(x, point["template_ms"])
                    ex_pss.add(x, point["idle_pss_mib"])
                    continue
                deploy_s.add(x, point["deploy_ms"])
                compile_s.add(x, point["compile_in_process_ms"])
                cold.add(x, point["cold_ms"])
                template.add(x, point["template_ms"])
                first.add(x, point["first_call_in_process_ms"])
                pss.add(x, point["idle_pss_mib"])
    return curve
