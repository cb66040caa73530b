"""FunctionRuntime on the host: outputs, limits, outcome classification, isolation, threads."""

from __future__ import annotations

import concurrent.futures
import io
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from wasm_runtime.engine import precompile
from wasm_runtime.errors import InvalidModule
from wasm_runtime.runner import RETIRED_MAX, FunctionRuntime, LoadedFunction, near_memory_cap
from wasm_runtime.types import (
    EXIT_OOM,
    EXIT_OUTPUT_TOO_LARGE,
    EXIT_TIMEOUT,
    EXIT_TRAP,
    MIB,
    Invocation,
    InvocationResult,
    Limits,
    Outcome,
)

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
TIMEOUT_SLACK_MS = 150


def wasm(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((FUNCTIONS / name / f"{name}.wat").read_text()))


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionRuntime]:
    rt = FunctionRuntime(tmp_path_factory.mktemp("work"))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def fns(runtime: FunctionRuntime) -> dict[str, LoadedFunction]:
    return {
        name: runtime.load(precompile(wasm(name), runtime.engine))
        for name in ("hello", "echo", "misbehave", "cgi")
    }


def call(
    runtime: FunctionRuntime,
    fn: LoadedFunction,
    *args: str,
    stdin: bytes = b"",
    env: tuple[tuple[str, str], ...] = (),
    **limits: int,
) -> InvocationResult:
    return runtime.invoke(fn, Invocation(stdin=stdin, args=args, env=env, limits=Limits(**limits)))


def test_hello(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    result = call(runtime, fns["hello"])
    assert result.outcome is Outcome.OK
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"Hello from unifaas!\n", b"")
    assert result.duration_ms > 0
    assert result.memory_bytes == 64 * 1024
    assert result.fuel_used is None  # unmetered
    assert result.trap_code == ""


def test_echo_small_empty_and_one_mib(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    assert call(runtime, fns["echo"], stdin=b"abc\x00def").stdout == b"abc\x00def"
    assert call(runtime, fns["echo"]).stdout == b""
    big = os.urandom(MIB)
    result = call(runtime, fns["echo"], stdin=big)
    assert result.ok
    assert result.stdout == big


def test_args_and_env_are_exactly_the_invocations(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_SECRET", "must-not-leak")
    result = call(runtime, fns["cgi"], "a b", "c=d", env=(("GREETING", "hi"), ("EMPTY", "")))
    _headers, _, listing = result.stdout.partition(b"\n\n")
    assert listing.decode().splitlines() == ["GREETING=hi", "EMPTY=", "fn", "a b", "c=d"]


def test_argv0_is_the_loaded_name(runtime: FunctionRuntime) -> None:
    fn = runtime.load(wasm("cgi"), precompiled=False, name="lister")
    try:
        assert call(runtime, fn).stdout.endswith(b"\n\nlister\n")
    finally:
        runtime.unload(fn)


@pytest.mark.parametrize("code", [0, 1, 42, 125])
def test_exit_codes(runtime: FunctionRuntime, fns: dict[str, LoadedFunction], code: int) -> None:
    result = call(runtime, fns["misbehave"], "exit", str(code))
    assert (result.outcome, result.exit_code) == (Outcome.OK, code)


def test_exit_codes_from_126_up_are_refused_by_wasmtime(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    # WASI preview1 in wasmtime only allows exit statuses in [0, 126).
    result = call(runtime, fns["misbehave"], "exit", "200")
    assert (result.outcome, result.exit_code) == (Outcome.TRAP, EXIT_TRAP)
    assert result.message.startswith("exit with invalid exit status")


def test_stderr_and_usage(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    result = call(runtime, fns["misbehave"], "stderr")
    assert (result.outcome, result.exit_code) == (Outcome.OK, 3)
    assert result.stderr == b"misbehave: something went wrong\n"
    usage = call(runtime, fns["misbehave"])
    assert usage.exit_code == 2
    assert usage.stderr.startswith(b"usage: misbehave")


def test_timeout_then_the_runtime_serves_again(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    started = time.perf_counter()
    result = call(runtime, fns["misbehave"], "loop", timeout_ms=200)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert result.outcome is Outcome.TIMEOUT
    assert result.exit_code == EXIT_TIMEOUT
    assert result.trap_code == "interrupt"
    assert 200 <= result.duration_ms <= elapsed_ms < 200 + TIMEOUT_SLACK_MS
    assert call(runtime, fns["hello"]).stdout == b"Hello from unifaas!\n"


def test_oom_then_the_runtime_serves_again(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    result = call(runtime, fns["misbehave"], "oom", memory_bytes=8 * MIB)
    assert result.outcome is Outcome.OUT_OF_MEMORY
    assert result.exit_code == EXIT_OOM
    assert 7 * MIB <= result.memory_bytes <= 8 * MIB
    assert result.trap_code == "unreachable"
    assert call(runtime, fns["hello"]).ok


def test_oom_by_exit_code_keeps_the_functions_code(runtime: FunctionRuntime) -> None:
    grow_then_exit = wasmtime.wat2wasm(
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "_start")'
        "   (loop $l (br_if $l (i32.ne (memory.grow (i32.const 4)) (i32.const -1))))"
        "   (call $exit (i32.const 12))))"
    )
    fn = runtime.load(bytes(grow_then_exit), precompiled=False)
    result = call(runtime, fn, memory_bytes=2 * MIB)
    assert (result.outcome, result.exit_code) == (Outcome.OUT_OF_MEMORY, 12)


def test_minimum_memory_above_the_cap(runtime: FunctionRuntime) -> None:
    big = wasmtime.wat2wasm('(module (memory (export "memory") 64) (func (export "_start")))')
    fn = runtime.load(bytes(big), precompiled=False)
    result = call(runtime, fn, memory_bytes=1 * MIB)
    assert (result.outcome, result.exit_code) == (Outcome.OUT_OF_MEMORY, EXIT_OOM)
    assert "4194304" in result.message
    assert call(runtime, fn, memory_bytes=4 * MIB).ok


def test_trap(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    result = call(runtime, fns["misbehave"], "trap")
    assert (result.outcome, result.exit_code) == (Outcome.TRAP, EXIT_TRAP)
    assert result.trap_code == "unreachable"
    assert result.message.startswith("wasm trap: wasm `unreachable` instruction executed")
    assert "backtrace" in result.message


def test_stdout_cap_stops_the_run_promptly(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    result = call(runtime, fns["misbehave"], "spam", stdout_max_bytes=64 * 1024, timeout_ms=5000)
    assert result.outcome is Outcome.OUTPUT_TOO_LARGE
    assert result.exit_code == EXIT_OUTPUT_TOO_LARGE
    assert len(result.stdout) == 64 * 1024
    assert result.stdout.startswith(b"spam spam")
    assert result.duration_ms < 2000  # ended by the cap, not the 5 s timeout
    assert "stdout" in result.message


def test_stderr_cap(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    result = call(runtime, fns["misbehave"], "stderr", stderr_max_bytes=10)
    assert result.outcome is Outcome.OUTPUT_TOO_LARGE
    assert result.stderr == b"misbehave:"


def test_output_exactly_at_the_cap_is_fine(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    result = call(runtime, fns["echo"], stdin=b"x" * 1000, stdout_max_bytes=1000)
    assert result.ok


def test_output_past_the_cap_between_ticks_is_caught_after_the_run(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    # echo writes 1001 bytes and exits long before the ticker's next look.
    result = call(runtime, fns["echo"], stdin=b"y" * 1001, stdout_max_bytes=1000)
    assert (result.outcome, result.exit_code) == (Outcome.OUTPUT_TOO_LARGE, EXIT_OUTPUT_TOO_LARGE)
    assert result.stdout == b"y" * 1000


def test_output_files_are_reused_one_call_at_a_time(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    slots = runtime.work_dir / "slots"
    before = set(slots.iterdir())
    for i in range(20):
        assert call(runtime, fns["echo"], stdin=str(i).encode()).stdout == str(i).encode()
    assert set(slots.iterdir()) == before  # sequential calls made no new slot
    # A short output after a long one: nothing of the earlier call is left in the file.
    assert call(runtime, fns["echo"], stdin=b"z" * 5000).ok
    assert call(runtime, fns["echo"], stdin=b"s").stdout == b"s"


def test_fuel(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    metered = call(runtime, fns["hello"], fuel=100_000)
    assert metered.ok
    assert metered.fuel_used is not None
    assert 0 < metered.fuel_used < 100_000
    spent = call(runtime, fns["misbehave"], "loop", fuel=100_000)
    assert (spent.outcome, spent.exit_code) == (Outcome.TRAP, EXIT_TRAP)
    assert spent.trap_code == "out_of_fuel"
    assert spent.message.startswith("out of fuel")
    assert spent.fuel_used == 100_000


def test_files_bundle_is_readable_and_writes_do_not_leak(runtime: FunctionRuntime) -> None:
    fn = runtime.load(
        precompile(wasm("files"), runtime.engine),
        files_tar=tar_of({"data.txt": b"bundle data\n", "sub/other.txt": b"x"}),
    )
    try:
        for _ in range(2):
            result = call(runtime, fn)
            assert result.ok, result.stderr
            assert result.stdout == b"bundle data\nscratch.txt existed: no\n"
        assert fn.files_dir is not None
        assert sorted(p.name for p in fn.files_dir.iterdir()) == ["data.txt", "sub"]
        assert list((runtime.work_dir / "calls").iterdir()) == []
    finally:
        runtime.unload(fn)
    assert not fn.files_dir.exists()


def test_files_function_without_bundle_fails_cleanly(runtime: FunctionRuntime) -> None:
    fn = runtime.load(wasm("files"), precompiled=False)
    result = call(runtime, fn)
    assert (result.outcome, result.exit_code) == (Outcome.OK, 1)
    assert b"cannot open data.txt" in result.stderr


@pytest.mark.parametrize(
    "bundle",
    [
        tar_of({"/etc/passwd": b"x"}),
        tar_of({"../escape.txt": b"x"}),
        tar_of({"a/../../escape.txt": b"x"}),
        tar_of({}, links={"link": "/etc/passwd"}),
        b"this is not a tar archive at all" * 20,
    ],
)
def test_bad_bundles_are_refused(runtime: FunctionRuntime, bundle: bytes) -> None:
    with pytest.raises(InvalidModule) as info:
        runtime.load(wasm("files"), precompiled=False, files_tar=bundle)
    assert info.value.reason == "bad_files_bundle"
    assert list((runtime.work_dir / "functions").iterdir()) == []


def test_load_rejects_bad_artifacts(runtime: FunctionRuntime) -> None:
    with pytest.raises(InvalidModule) as info:
        runtime.load(wasm("hello"))  # plain wasm passed as a precompiled artifact
    assert info.value.reason == "bad_artifact"
    with pytest.raises(InvalidModule) as info:
        runtime.load(b"nope", precompiled=False)
    assert info.value.reason == "not_wasm"


def test_an_artifact_file_is_mapped_and_may_go_once_loaded(
    runtime: FunctionRuntime, tmp_path: Path
) -> None:
    from wasm_runtime.selftest import SILENT_COMPONENT_WAT

    component = wasmtime.wat2wasm(SILENT_COMPONENT_WAT)
    for name, source in (("echo", wasm("echo")), ("silent", component)):
        path = tmp_path / name
        path.write_bytes(precompile(bytes(source)))
        fn = runtime.load(path, name=name)
        path.unlink()  # what the agent does: wasmtime's mapping keeps the pages
        if isinstance(fn, LoadedFunction):
            assert call(runtime, fn, stdin=b"mapped").stdout == b"mapped"
        runtime.unload(fn)
    bad = tmp_path / "bad"
    bad.write_bytes(wasm("hello"))
    with pytest.raises(InvalidModule, match="cannot be loaded here"):
        runtime.load(bad)
    source_file = tmp_path / "hello.wasm"
    source_file.write_bytes(wasm("hello"))
    fn = runtime.load(source_file, precompiled=False)
    assert isinstance(fn, LoadedFunction) and call(runtime, fn).ok


def test_a_runtime_never_closed_leaves_no_work_dir() -> None:
    rt = FunctionRuntime()
    work_dir = rt.work_dir
    del rt
    import gc

    gc.collect()
    assert not work_dir.exists()


def test_concurrent_invocations(runtime: FunctionRuntime, fns: dict[str, LoadedFunction]) -> None:
    payloads = [os.urandom(1000 * (i + 1)) for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = pool.submit(call, runtime, fns["misbehave"], "loop", timeout_ms=300)
        echoes = [pool.submit(call, runtime, fns["echo"], stdin=p) for p in payloads]
        trap = pool.submit(call, runtime, fns["misbehave"], "trap")
        results = [f.result() for f in echoes]
        assert slow.result().outcome is Outcome.TIMEOUT
        assert trap.result().outcome is Outcome.TRAP
    assert [r.stdout for r in results] == payloads


def test_ticker_idles_between_calls(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    call(runtime, fns["hello"])
    time.sleep(0.05)  # let a tick in progress finish
    idle_from = runtime.epoch_ticks
    time.sleep(0.15)
    assert runtime.epoch_ticks == idle_from
    call(runtime, fns["misbehave"], "loop", timeout_ms=100)
    assert runtime.epoch_ticks >= idle_from + 10


def test_a_call_starting_between_ticks_still_times_out(
    runtime: FunctionRuntime, fns: dict[str, LoadedFunction]
) -> None:
    # The second call starts while the ticker waits out its period (it is not woken
    # for it): its deadline still comes within about a tick of its timeout.
    for _ in range(3):
        result = call(runtime, fns["misbehave"], "loop", timeout_ms=50)
        assert result.outcome is Outcome.TIMEOUT
        assert 50 <= result.duration_ms < 1000


def test_close_removes_its_own_work_dir() -> None:
    rt = FunctionRuntime()
    fn = rt.load(wasm("hello"), precompiled=False)
    assert rt.invoke(fn, Invocation()).ok
    rt.close()
    assert not rt.work_dir.exists()


def test_a_second_linear_memory_is_refused(runtime: FunctionRuntime) -> None:
    # The memory cap is per memory in wasmtime; one memory per call keeps it a total.
    two = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (memory $extra 1) (func (export "_start")))'
    )
    with pytest.raises(InvalidModule) as refused:
        runtime.load(bytes(two), precompiled=False)
    assert refused.value.reason == "too_many_memories"


@pytest.mark.parametrize(
    ("used_mib", "cap_mib", "oom"),
    [(63, 64, True), (58, 64, True), (57, 64, False), (7.1, 8, True), (6.9, 8, False)],
)
def test_oom_rule(used_mib: float, cap_mib: int, oom: bool) -> None:
    assert near_memory_cap(int(used_mib * MIB), cap_mib * MIB) is oom


def test_an_agent_runtime_frees_a_calls_store_after_its_answer(tmp_path: Path) -> None:
    """What the agent asks for (free_after_answer): each call's store outlives the call,
    until drop_retired, and never more than RETIRED_MAX of them; by default none does."""
    keeping = FunctionRuntime(tmp_path / "keeping", free_after_answer=True)
    plain = FunctionRuntime(tmp_path / "plain")
    try:
        loaded = {}
        for runtime in (keeping, plain):
            fn = loaded[id(runtime)] = runtime.load(precompile(wasm("echo")))
            for i in range(RETIRED_MAX + 2):
                result = runtime.invoke(fn, Invocation(stdin=f"call {i}".encode()))
                assert result.stdout == f"call {i}".encode()
        assert keeping.retired == RETIRED_MAX and plain.retired == 0
        keeping.drop_retired()
        assert keeping.retired == 0
        # The stores held no pooled slot past their drop: calls go on as before.
        again = keeping.invoke(loaded[id(keeping)], Invocation(stdin=b"after"))
        assert again.stdout == b"after" and keeping.retired == 1
    finally:
        keeping.close()
        plain.close()
