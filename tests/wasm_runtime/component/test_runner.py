"""Components served by the runtime natively: the request in, the response out, and every
way a component can misbehave ending in its own outcome while the runtime serves on."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest

from functions import component_module
from tests.wasm_runtime.component.fixtures import component
from wasm_runtime.bundle import pack_files
from wasm_runtime.component.runner import LoadedComponent
from wasm_runtime.errors import InvalidModule
from wasm_runtime.runner import FunctionRuntime
from wasm_runtime.types import (
    EXIT_OOM,
    EXIT_OUTPUT_TOO_LARGE,
    EXIT_TIMEOUT,
    EXIT_TRAP,
    HttpRequest,
    Invocation,
    Limits,
    Outcome,
)

QUICK = Limits(timeout_ms=300)


@pytest.fixture(scope="module")
def runtime() -> Iterator[FunctionRuntime]:
    with FunctionRuntime() as rt:
        yield rt


def load(runtime: FunctionRuntime, wasm: bytes) -> LoadedComponent:
    fn = runtime.load(wasm, precompiled=False, name="fixture")
    assert isinstance(fn, LoadedComponent)
    return fn


def call(
    runtime: FunctionRuntime, name: str, request: HttpRequest | None = None, limits: Limits = QUICK
):  # type: ignore[no-untyped-def]
    return runtime.invoke(
        load(runtime, component(name)), Invocation(request=request, limits=limits)
    )


def test_the_echo_example_answers_with_the_request_body_and_path(runtime: FunctionRuntime) -> None:
    fn = load(runtime, component_module("http-echo"))
    body = bytes(range(256)) * 800  # every byte value, in 64 KiB reads and writes
    request = HttpRequest("POST", "/a/b?c=1", headers=(("x-in", "1"),), body=body)
    result = runtime.invoke(fn, Invocation(request=request))
    assert result.outcome is Outcome.OK and result.exit_code == 0
    assert result.response is not None
    assert (result.response.status, result.response.error) == (200, "")
    assert result.response.headers == (("x-path", "/a/b?c=1"),)
    assert result.response.body == body


def test_bytes_cross_the_wall_in_one_copy() -> None:
    from wasm_runtime.component import fastpath

    assert fastpath.INSTALLED  # the pinned wasmtime: a 4 MiB body would take seconds without


def test_a_plain_answer_with_its_own_status(runtime: FunctionRuntime) -> None:
    result = call(runtime, "hello")
    assert result.ok and result.response is not None
    assert (result.response.status, result.response.body) == (201, b"hello\n")


def test_stdout_is_the_call_s_log_not_its_body(runtime: FunctionRuntime) -> None:
    result = call(runtime, "logs")
    assert result.ok and result.stdout == b"hello\n"
    assert result.response is not None and result.response.body == b""


def test_no_response_set_is_said_so(runtime: FunctionRuntime) -> None:
    result = call(runtime, "silent")
    assert result.ok and result.response is not None
    assert result.response.error == "no_response"


@pytest.mark.parametrize("name", ["spin", "wait"])
def test_spinning_or_waiting_forever_times_out(runtime: FunctionRuntime, name: str) -> None:
    result = call(runtime, name)
    assert (result.outcome, result.exit_code) == (Outcome.TIMEOUT, EXIT_TIMEOUT)
    assert result.duration_ms < 5_000


def test_a_trap_is_a_trap(runtime: FunctionRuntime) -> None:
    result = call(runtime, "trap")
    assert (result.outcome, result.exit_code) == (Outcome.TRAP, EXIT_TRAP)
    assert "unreachable" in result.message


@pytest.mark.parametrize(("name", "what"), [("headers", "headers"), ("flood", "response body")])
def test_output_past_its_cap_stops_the_call(runtime: FunctionRuntime, name: str, what: str) -> None:
    limits = Limits(timeout_ms=10_000, stdout_max_bytes=1 << 20)
    result = call(runtime, name, limits=limits)
    assert (result.outcome, result.exit_code) == (Outcome.OUTPUT_TOO_LARGE, EXIT_OUTPUT_TOO_LARGE)
    assert what in result.message


def test_a_denied_interface_traps_naming_it(runtime: FunctionRuntime) -> None:
    fn = load(runtime, component("denied"))
    assert "wasi:sockets/instance-network@0.2.0" in fn.imports.denied
    result = runtime.invoke(fn, Invocation(limits=QUICK))
    assert result.outcome is Outcome.TRAP
    assert "wasi:sockets/instance-network@0.2.0#instance-network" in result.message
    assert "does not grant" in result.message


def test_fuel_runs_out(runtime: FunctionRuntime) -> None:
    result = call(runtime, "spin", limits=Limits(timeout_ms=10_000, fuel=100_000))
    assert result.outcome is Outcome.TRAP and "out of fuel" in result.message


def test_the_runtime_serves_on_after_every_misbehaviour(runtime: FunctionRuntime) -> None:
    for name in ("spin", "trap", "flood", "silent"):
        call(runtime, name, limits=Limits(timeout_ms=300, stdout_max_bytes=1 << 16))
    assert call(runtime, "hello").ok


def test_a_component_with_no_http_handler_is_refused(runtime: FunctionRuntime) -> None:
    empty = b"\0asm\x0d\x00\x01\x00"
    with pytest.raises(InvalidModule) as refused:
        runtime.load(empty, precompiled=False)
    assert refused.value.reason == "no_http_handler"


def test_a_precompiled_component_loads_as_one(runtime: FunctionRuntime) -> None:
    from wasm_runtime.engine import precompile

    fn = runtime.load(precompile(component("hello")))
    assert isinstance(fn, LoadedComponent)
    assert runtime.invoke(fn, Invocation(limits=QUICK)).ok


def test_calls_on_several_threads_at_once(runtime: FunctionRuntime) -> None:
    """As the agent runs a VM's calls: one loaded component, several threads."""
    fn = load(runtime, component_module("http-echo"))

    def calls(n: int) -> list[bytes]:
        out = []
        for i in range(25):
            body = f"thread {n} call {i}".encode()
            result = runtime.invoke(fn, Invocation(request=HttpRequest("POST", "/t", body=body)))
            assert result.ok and result.response is not None, result.message
            out.append(result.response.body)
        return out

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(calls, range(4)))
    assert got == [[f"thread {n} call {i}".encode() for i in range(25)] for n in range(4)]


def test_a_component_reads_its_files_bundle_and_writes_a_fresh_copy(
    runtime: FunctionRuntime,
) -> None:
    fn = runtime.load(
        component("files"), precompiled=False, files_tar=pack_files({"hello.txt": b"hi there"})
    )
    for _ in range(2):  # made.txt of the first call is gone for the second
        result = runtime.invoke(fn, Invocation(limits=QUICK))
        assert result.outcome is Outcome.OK, result.message
        assert result.response is not None
        assert result.response.body == b"fresh denied hi there"
    runtime.unload(fn)


def test_a_component_without_files_sees_no_preopens(runtime: FunctionRuntime) -> None:
    result = call(runtime, "files")
    assert result.outcome is Outcome.OK, result.message
    assert result.response is not None and result.response.body == b"no preopens"


def test_a_component_over_its_memory_cap_at_start_is_out_of_memory(
    runtime: FunctionRuntime,
) -> None:
    fn = load(runtime, component("big"))
    small = Limits(timeout_ms=300, memory_bytes=8 * 1024 * 1024)
    result = runtime.invoke(fn, Invocation(limits=small))
    assert (result.outcome, result.exit_code) == (Outcome.OUT_OF_MEMORY, EXIT_OOM)
    assert "memory limit of 8388608 bytes" in result.message
    # Within its cap it starts and answers.
    result = runtime.invoke(fn, Invocation(limits=QUICK))
    assert result.outcome is Outcome.OK and result.response is not None
    assert result.response.status == 201


def test_an_agent_runtime_frees_a_components_store_after_its_answer() -> None:
    """As for modules (free_after_answer): the call's store outlives the call until
    drop_retired, and the component answers the same either way."""
    with FunctionRuntime(free_after_answer=True) as keeping:
        fn = load(keeping, component_module("http-echo"))
        for i in range(3):
            result = keeping.invoke(
                fn, Invocation(request=HttpRequest("POST", "/", body=b"%d" % i))
            )
            assert result.response is not None and result.response.body == b"%d" % i
        assert keeping.retired == 3
        keeping.drop_retired()
        assert keeping.retired == 0
