"""``unifaas bench component``: wasi:http components through the platform vs the same host
code in-process, beside the raw echo module in the same run.

For each of echo (a raw module), http-echo (a WAT component) and hello-py (CPython, built by
componentize-py): warm calls through ``unifaas up`` split by ``Server-Timing`` into the
function's own run in the VM and what the platform adds around it; then the component's run
in-process (the baseline: the same runner, natively). Goals (issue "Standard functions"):
what the platform adds to a component call is no more than what it adds to echo; the run
in the VM is at most 12x the in-process run under TCG.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench.density import _proc_kib
from loadtests.bench.platform import (
    _deploy,
    _platform,
    _timed_start,
    _wait_idle,
    server_timing,
    until_templated,
)
from loadtests.bench.stats import percentile
from loadtests.chaos import qemu_children
from loadtests.errors import BenchError
from loadtests.launch import platform_process
from wasm_runtime.engine import precompile
from wasm_runtime.runner import FunctionRuntime
from wasm_runtime.types import HttpRequest, Invocation, Limits

Progress = Callable[[str], None]
PAYLOAD = json.dumps({"a": 1, "b": [2, 3]}).encode()
# The path each example is called at.
CALLS = {
    "echo": "/fn/echo",
    "http-echo": "/fn/http-echo/p",
    "hello-py": "/fn/hello-py/echo",
    "hello-js": "/fn/hello-js/echo",
}
COMPONENTS = ("http-echo", "hello-py", "hello-js")


def _examples() -> dict[str, bytes]:
    from functions import component_module, wat_module
    from functions.build import build_one

    functions = Path(__file__).resolve().parents[2] / "functions"
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-py-") as tmp:
        python = build_one("hello-py", "python", [functions / "hello-py" / "app.py"], Path(tmp))
        js = build_one("hello-js", "js", [functions / "hello-js" / "app.js"], Path(tmp))
        return {
            "echo": wat_module("echo"),
            "http-echo": component_module("http-echo"),
            "hello-py": python.read_bytes(),
            "hello-js": js.read_bytes(),
        }


async def _warm(c: httpx.AsyncClient, path: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"total": [], "vm": [], "run": []}
    for _ in range(n):
        started = time.perf_counter()
        r = await c.post(path, content=PAYLOAD)
        out["total"].append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise BenchError(f"{path}: {r.status_code} {r.text[:200]}")
        timing = r.headers.get("server-timing", "")
        out["vm"].append(server_timing(timing, "vm") or 0.0)
        out["run"].append(server_timing(timing, "run") or 0.0)
    return out


def _idle_pss_mib(platform_pid: int) -> float:
    """The proportional set size of each QEMU the platform runs (here: one), in MiB."""
    pids = qemu_children(platform_pid)
    if not pids:
        raise BenchError("no QEMU was running when its memory was measured")
    return sum(_proc_kib(pid, "smaps_rollup", "Pss") for pid in pids) / 1024 / len(pids)


def _in_process(wasm: bytes, n: int) -> list[float]:
    with FunctionRuntime() as runtime:
        fn = runtime.load(precompile(wasm))
        request = HttpRequest("POST", "/echo", body=PAYLOAD)
        inv = Invocation(request=request, limits=Limits(timeout_ms=30_000))
        out = []
        for i in range(n + 5):
            result = runtime.invoke(fn, inv)
            if not result.ok:
                raise BenchError(f"in-process: {result.message}")
            if i >= 5:
                out.append(result.duration_ms)
        return out


async def _run(calls: int, starts: int, progress: Progress) -> dict[str, Any]:
    progress("component: building hello-py with componentize-py")
    examples = _examples()
    result: dict[str, Any] = {"calls": calls}
    started = time.perf_counter()
    artifact = precompile(examples["hello-py"])
    result["hello_py_component_bytes"] = len(examples["hello-py"])
    result["hello_py_artifact_bytes"] = len(artifact)
    result["hello_py_compile_s"] = round(time.perf_counter() - started, 1)
    with tempfile.TemporaryDirectory(prefix="unifaas-bench-") as tmp:
        progress("component: starting the platform")
        with _platform(Path(tmp) / "p", idle_target=1) as (url, token):
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as c:
                for name, wasm in examples.items():
                    started = time.perf_counter()
                    r = await c.post(
                        f"/v1/functions/{name}",
                        files={"module": ("m.wasm", wasm)},
                        data={"config": '{"timeout_s": 30}'},
                    )
                    r.raise_for_status()
                    result[f"{name}_deploy_s"] = round(time.perf_counter() - started, 2)
                    progress(f"component: {name}: deployed; {calls} warm calls")
                    await _warm(c, CALLS[name], 10)
                    got = await _warm(c, CALLS[name], calls)
                    adds = [t - run for t, run in zip(got["total"], got["run"], strict=True)]
                    result[f"{name}_warm_p50_ms"] = round(percentile(got["total"], 50), 2)
                    result[f"{name}_run_in_vm_p50_ms"] = round(percentile(got["run"], 50), 2)
                    result[f"{name}_platform_adds_p50_ms"] = round(percentile(adds, 50), 2)
                    # ... of which the host's path (gateway, scheduler, wire) and the VM's
                    # outside the run (the agent, the runner around the component).
                    host = [t - vm for t, vm in zip(got["total"], got["vm"], strict=True)]
                    agent = [vm - run for vm, run in zip(got["vm"], got["run"], strict=True)]
                    result[f"{name}_host_path_p50_ms"] = round(percentile(host, 50), 2)
                    result[f"{name}_vm_outside_run_p50_ms"] = round(percentile(agent, 50), 2)
                progress(f"component: hello-py: {starts} forced pre-warmed starts")
                prewarmed = []
                for i in range(starts):
                    await _deploy(c, f"pw{i}", examples["hello-py"], '{"timeout_s": 30}')
                    await _wait_idle(c)
                    prewarmed.append(await _timed_start(c, f"/fn/pw{i}", "prewarmed"))
        progress("component: hello-py: cold starts, then from its version's template")
        state = Path(tmp) / "cold"
        state.mkdir()
        env = {"UNIFAAS_IDLE_TARGET": "0"}
        with platform_process(state, max_vms=4, extra_env=env) as served:
            pid = served.proc.pid
            headers = {"Authorization": f"Bearer {(state / 'token').read_text().strip()}"}
            async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=300) as c:
                cold, from_template, pss = [], [], []
                config = '{"timeout_s": 30, "keep_alive_s": 0.5}'
                for i in range(starts):
                    await _deploy(c, f"cold{i}", examples["hello-py"], config)
                    cold.append(await _timed_start(c, f"/fn/cold{i}", "cold"))
                    pss.append(_idle_pss_mib(pid))
                    await until_templated(c, f"cold{i}@1", i + 1)
                    from_template.append(await _timed_start(c, f"/fn/cold{i}", "cold"))
    result["hello-py_prewarmed_start_ms_p50"] = round(statistics.median(prewarmed), 1)
    result["hello-py_cold_start_ms_p50"] = round(statistics.median(cold), 1)
    result["hello-py_cold_template_start_ms_p50"] = round(statistics.median(from_template), 1)
    result["hello-py_idle_vm_pss_mib"] = round(statistics.median(pss), 1)
    result["ratio_hello-py_cold_template_to_prewarmed"] = round(
        result["hello-py_cold_template_start_ms_p50"] / result["hello-py_prewarmed_start_ms_p50"],
        2,
    )
    for name in COMPONENTS:
        progress(f"component: {name} in-process (the baseline)")
        result[f"{name}_in_process_p50_ms"] = round(
            statistics.median(_in_process(examples[name], calls)), 2
        )
        result[f"ratio_{name}_run_vm_to_in_process"] = round(
            result[f"{name}_run_in_vm_p50_ms"] / result[f"{name}_in_process_p50_ms"], 2
        )
        result[f"ratio_{name}_platform_adds_to_echo"] = round(
            result[f"{name}_platform_adds_p50_ms"] / result["echo_platform_adds_p50_ms"], 2
        )
    return result


def bench_component(
    calls: int = 100, starts: int = 3, progress: Progress = print
) -> dict[str, Any]:
    return asyncio.run(_run(calls, starts, progress))
