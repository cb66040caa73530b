"""The runner benchmark: one call of a function natively through ``FunctionRuntime.invoke``
against the bare wasmtime sequence it wraps, measured interleaved in the same run.

The bare sequence is the floor any runner pays: a new Store, a WasiConfig, instantiating
the pre-linked module and calling ``_start``. The runner adds the limits, stdin, output
capture, the outcome's classification and, for a function with a files bundle, the
call's fresh copy of it.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from functions import wat_module
from loadtests.bench.stats import percentile
from wasm_runtime.bundle import pack_files
from wasm_runtime.component.runner import LoadedComponent
from wasm_runtime.engine import make_engine, precompile
from wasm_runtime.runner import FunctionRuntime, LoadedFunction
from wasm_runtime.types import Invocation

ECHO_PAYLOAD = b"x" * 64
ROUNDS = 5  # interleaved rounds, so drift on a noisy machine hits every arm alike
BUNDLE = {"data.txt": b"bundled data for the files example\n", "sub/more.txt": b"x" * 4096}


def _bare_call(runtime: FunctionRuntime, fn: LoadedFunction) -> Callable[[], None]:
    engine, pre = runtime.engine, fn.instance_pre

    def call() -> None:
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(2**62)
        store.set_epoch_deadline(2**40)
        start = pre.instantiate(store).exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)

    return call


def _fresh_copy(runtime: FunctionRuntime, fn: LoadedFunction) -> Callable[[], None]:
    """What a files bundle alone adds to a call: its fresh copy, then its removal."""
    tree = fn.files
    assert tree is not None
    scratch = runtime.work_dir / "bench-copies"
    scratch.mkdir(exist_ok=True)
    counter = iter(range(1 << 62))

    def copy() -> None:
        dest = scratch / str(next(counter))
        tree.fresh_copy(dest)
        shutil.rmtree(dest)

    return copy


def _timed(arms: dict[str, Callable[[], object]], calls: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in arms}
    per_round = max(1, calls // ROUNDS)
    for _ in range(ROUNDS):
        for name, call in arms.items():
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                out[name].append((time.perf_counter() - started) * 1000)
    return out


def _module(loaded: LoadedFunction | LoadedComponent) -> LoadedFunction:
    assert isinstance(loaded, LoadedFunction), "these examples are core modules"
    return loaded


def bench_runner(calls: int = 2000) -> dict[str, Any]:
    with FunctionRuntime() as runtime, FunctionRuntime(engine=make_engine()) as on_demand:
        echo = _module(runtime.load(precompile(wat_module("echo"))))
        echo_on_demand = _module(on_demand.load(precompile(wat_module("echo"))))
        files = _module(runtime.load(precompile(wat_module("files")), files_tar=pack_files(BUNDLE)))
        echo_inv = Invocation(stdin=ECHO_PAYLOAD)
        files_inv = Invocation()
        assert runtime.invoke(echo, echo_inv).stdout == ECHO_PAYLOAD
        assert runtime.invoke(files, files_inv).exit_code == 0
        samples = _timed(
            {
                "bare": _bare_call(runtime, echo),
                "bare_on_demand": _bare_call(on_demand, echo_on_demand),
                "runner": lambda: runtime.invoke(echo, echo_inv).raise_for_outcome(),
                "files": lambda: runtime.invoke(files, files_inv).raise_for_outcome(),
                "copy": _fresh_copy(runtime, files),
            },
            calls,
        )
    bare = statistics.median(samples["bare"])
    runner = statistics.median(samples["runner"])
    files_ms = statistics.median(samples["files"])
    on_demand_bare = statistics.median(samples["bare_on_demand"])
    return {
        "runner_calls": len(samples["runner"]),
        # On the runner's own engine (pooling allocator), and on wasmtime's default
        # engine, which allocates every instance's memory afresh.
        "bare_wasmtime_ms_p50": round(bare, 4),
        "bare_wasmtime_default_engine_ms_p50": round(on_demand_bare, 4),
        "runner_native_ms_p50": round(runner, 4),
        "runner_native_ms_p99": round(percentile(samples["runner"], 99), 4),
        "ratio_runner_over_bare": round(runner / bare, 2),
        "ratio_runner_over_bare_default_engine": round(runner / on_demand_bare, 2),
        "runner_files_ms_p50": round(files_ms, 4),
        "ratio_files_over_runner": round(files_ms / runner, 2),
        # The files example reads and writes through WASI; this is the bundle's own share.
        "bundle_fresh_copy_ms_p50": round(statistics.median(samples["copy"]), 4),
    }
