"""Compiling in a child the host can stop: the same artifact as in-process, the module's
own refusals passed through, and time, memory and artifact limits that end as
InvalidModule with the child gone."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import wasm
from wasm_runtime import compiler
from wasm_runtime.compiler import CompileLimits, CompileWorkerError, precompile_isolated
from wasm_runtime.engine import precompile
from wasm_runtime.errors import InvalidModule
from wasm_runtime.types import MIB


def children() -> list[int]:
    """Compile children: the zygote's (it is this process's, started on first use)."""
    zygote = compiler.zygote_pid()
    if zygote is None:
        return []
    out = subprocess.run(["pgrep", "-P", str(zygote)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in out.stdout.split()]


def many_functions(n: int) -> bytes:
    funcs = "(func i32.const 1 drop)" * n
    return bytes(
        wasmtime.wat2wasm(f'(module (memory (export "memory") 1) {funcs} (func (export "_start")))')
    )


async def test_the_artifact_is_the_one_compiled_in_process() -> None:
    assert await precompile_isolated(wasm("echo")) == precompile(wasm("echo"))


@pytest.mark.parametrize(
    "module",
    [
        b"\0asm\x01\0\0\0\x01\x05garbage",
        bytes(wasmtime.wat2wasm('(module (import "env" "f" (func)) (func (export "_start")))')),
        bytes(wasmtime.wat2wasm("(module)")),  # no _start
    ],
)
async def test_the_module_s_own_refusal_comes_back_as_is(module: bytes) -> None:
    with pytest.raises(InvalidModule) as here:
        precompile(module)
    with pytest.raises(InvalidModule) as isolated:
        await precompile_isolated(module)
    assert (isolated.value.reason, isolated.value.message) == (
        here.value.reason,
        here.value.message,
    )


async def test_a_compile_past_its_time_is_killed() -> None:
    with pytest.raises(InvalidModule) as refused:
        await precompile_isolated(many_functions(20_000), CompileLimits(timeout_s=0.05))
    assert refused.value.reason == "compile_timeout" and "0.05 s" in refused.value.message
    assert children() == []


async def test_a_cancelled_compile_leaves_no_child() -> None:
    task = asyncio.ensure_future(precompile_isolated(many_functions(20_000)))
    for _ in range(200):  # until the child runs
        if children():
            break
        await asyncio.sleep(0.01)
    assert children()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children() == []


async def test_a_compile_child_runs_under_its_limits_and_dumps_no_core() -> None:
    limits = CompileLimits(timeout_s=30.0, memory_bytes=1024 * MIB)
    task = asyncio.ensure_future(precompile_isolated(many_functions(20_000), limits))
    seen: dict[str, list[str]] = {}
    for _ in range(500):  # until a child has set its limits
        for pid in children():
            with contextlib.suppress(OSError):
                rows = Path(f"/proc/{pid}/limits").read_text().splitlines()
                seen = {r[:26].strip(): r[26:].split()[:2] for r in rows[1:]}
        if seen.get("Max address space") == [str(1024 * MIB)] * 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen["Max address space"] == [str(1024 * MIB)] * 2
    assert seen["Max core file size"] == ["0", "0"]
    assert seen["Max cpu time"][0] == str(math.ceil(30 * (os.cpu_count() or 1)) + 2)


async def test_an_artifact_above_the_limit_is_refused() -> None:
    with pytest.raises(InvalidModule) as refused:
        await precompile_isolated(wasm("echo"), CompileLimits(artifact_bytes=1000))
    assert refused.value.reason == "artifact_too_large"


async def test_a_compile_out_of_memory_is_the_module_s_answer() -> None:
    # 3,000 functions need more than 80 MiB of address space to compile; echo needs less.
    limits = CompileLimits(memory_bytes=80 * MIB)
    assert await precompile_isolated(wasm("echo"), limits)
    with pytest.raises(InvalidModule) as refused:
        await precompile_isolated(many_functions(3000), limits)
    assert refused.value.reason == "compile_resources" and "80 MiB" in refused.value.message
    assert children() == []


async def test_a_worker_without_room_for_itself_is_ours_not_the_module_s() -> None:
    with pytest.raises(CompileWorkerError, match="alone needs more than"):
        await precompile_isolated(wasm("echo"), CompileLimits(memory_bytes=30 * MIB))


async def test_a_zygote_that_cannot_start_is_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "_ZYGOTE", compiler._Zygote())
    monkeypatch.setattr(compiler, "ZYGOTE_ARGV", ("/nonexistent/python",))
    with pytest.raises(CompileWorkerError, match="did not start"):
        await precompile_isolated(wasm("echo"))


async def test_a_dead_zygote_is_replaced_and_compiles_start_fast() -> None:
    await precompile_isolated(wasm("echo"))
    first = compiler.zygote_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert await precompile_isolated(wasm("echo")) == precompile(wasm("echo"))
    assert compiler.zygote_pid() not in (None, first)
    # A fork of it starts with wasmtime imported: what a fresh Python took ~100 ms for.
    started = time.perf_counter()
    await precompile_isolated(wasm("echo"))
    assert time.perf_counter() - started < 5  # behaviour, not speed: it answered at all


def test_every_artifact_and_bundle_a_deploy_accepts_can_be_staged_in_a_guest() -> None:
    from gateway.settings import GatewaySettings
    from wasm_runtime.compiler import COMPONENT_COMPILE_LIMITS
    from wasm_runtime.protocol import MAX_FRAME_BYTES, STAGE_CHUNK_BYTES
    from wasm_runtime.staging import STAGE_MAX_BYTES

    assert STAGE_CHUNK_BYTES + 64 * 1024 <= MAX_FRAME_BYTES  # a chunk and its envelope
    for limits in (CompileLimits(), COMPONENT_COMPILE_LIMITS):
        assert limits.artifact_bytes <= STAGE_MAX_BYTES
    assert GatewaySettings().max_deploy_bytes <= STAGE_MAX_BYTES  # a files bundle, as sent
