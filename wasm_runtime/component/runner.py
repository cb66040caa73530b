"""One call of a component: a fresh Store and instance, its request in, its response out.

The same limits as a module's call: the timeout by epoch interruption (and by the host's
own waits, which look at the deadline), the memory cap on each linear memory, fuel when
set, and the output caps on the response body and the logs. How the call ended is read
from the call's own record (:class:`~.call.Call`) and the Store, never from a trap's text.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
from wasmtime import Store
from wasmtime.component import Component, ExportIndex, Linker

from wasm_runtime.bundle import BundleTree
from wasm_runtime.component import http
from wasm_runtime.component.call import Call, Sink, Stop, calling
from wasm_runtime.component.linking import ComponentImports
from wasm_runtime.engine import error_text
from wasm_runtime.hostfuncs import Bridge, CallContext
from wasm_runtime.ticker import TICK_MS, EpochTicker, deadline_ticks
from wasm_runtime.types import (
    EXIT_OOM,
    EXIT_OUTPUT_TOO_LARGE,
    EXIT_TIMEOUT,
    EXIT_TRAP,
    HttpRequest,
    HttpResponse,
    Invocation,
    InvocationResult,
    Limits,
    Outcome,
)

# A component is several core instances, memories and tables (componentize-py's: about a
# dozen instances); these bound what one call's Store may create.
INSTANCES_MAX = 100
MEMORIES_MAX = 16
TABLES_MAX = 100
TABLE_ELEMENTS_MAX = 1 << 17
# Response header names and values, all together, of one fields resource.
HEADERS_MAX_BYTES = 64 * 1024
UNMETERED_FUEL = 2**63 - 1
# Response fields the platform's HTTP server sets itself.
_SERVER_FIELDS = frozenset({"content-length", *http.FORBIDDEN})


@dataclasses.dataclass(eq=False)
class LoadedComponent:
    """A compiled component, its linker and the name of its handler export."""

    name: str  # argv[0] of every call
    component: Component
    linker: Linker
    handler: str  # e.g. "wasi:http/incoming-handler@0.2.0"
    imports: ComponentImports
    handle_index: ExportIndex  # its handler's ``handle``, found once at load
    files: BundleTree | None = None  # its unpacked files bundle


def invoke(
    engine: wasmtime.Engine,
    ticker: EpochTicker,
    fn: LoadedComponent,
    inv: Invocation,
    bridge: Bridge | None = None,
    files_root: Path | None = None,
    retire: Callable[[wasmtime.Store], None] | None = None,
) -> InvocationResult:
    """Run ``fn``'s handler once on ``inv.request``; never raises for what the component does.

    ``bridge`` carries its outbound requests and key-value calls to the host; ``files_root``
    is the call's fresh copy of its files bundle; ``retire`` takes the call's store when
    the call is done, for its caller to free (else it is freed at return)."""
    started = time.perf_counter()
    limits = inv.limits
    deadline = time.monotonic() + limits.timeout_ms / 1000
    call = Call(
        request=inv.request or HttpRequest(),
        name=fn.name,
        args=inv.args,
        env=inv.env,
        deadline=deadline,
        body=Sink("the response body", limits.stdout_max_bytes),
        stdout=Sink("stdout", limits.stderr_max_bytes),
        stderr=Sink("stderr", limits.stderr_max_bytes),
        headers_max_bytes=HEADERS_MAX_BYTES,
        host=CallContext(bridge, deadline),
        files_root=files_root,
    )
    budget = limits.fuel if limits.fuel is not None else UNMETERED_FUEL
    with ticker.running(), calling(call):
        try:
            error, fuel_left = _run(engine, fn, call, limits, budget, retire)
        finally:
            call.table.close()
    fuel_used = budget - fuel_left if limits.fuel is not None else None
    result = InvocationResult(
        outcome=Outcome.OK,
        exit_code=0,
        stdout=bytes(call.stdout.data),
        stderr=bytes(call.stderr.data),
        duration_ms=(time.perf_counter() - started) * 1000,
        fuel_used=fuel_used,
        response=_response(call),
    )
    return _classify(
        result, call, error, inv, out_of_fuel=limits.fuel is not None and not fuel_left
    )


def _store(engine: wasmtime.Engine, limits: Limits, budget: int, capped: bool = True) -> Store:
    store = wasmtime.Store(engine)
    store.set_limits(
        memory_size=limits.memory_bytes if capped else -1,
        table_elements=TABLE_ELEMENTS_MAX,
        instances=INSTANCES_MAX,
        tables=TABLES_MAX,
        memories=MEMORIES_MAX,
    )
    store.set_fuel(budget)
    store.set_epoch_deadline(deadline_ticks(limits.timeout_ms, TICK_MS))
    return store


def _run(
    engine: wasmtime.Engine,
    fn: LoadedComponent,
    call: Call,
    limits: Limits,
    budget: int,
    retire: Callable[[wasmtime.Store], None] | None = None,
) -> tuple[wasmtime.WasmtimeError | None, int]:
    """The call in a fresh Store: how it failed (None: it did not) and the fuel it left.
    Without ``retire``, every wasmtime object of the call dies when this returns, so the
    run's time includes giving its memories back."""
    store = _store(engine, limits, budget)
    if retire is not None:
        retire(store)
    error: wasmtime.WasmtimeError | None = None
    try:
        try:
            instance = fn.linker.instantiate(store, fn.component)
        except wasmtime.WasmtimeError:
            if call.stopped is Stop.NONE and _fits_uncapped(engine, fn, limits, budget):
                call.stopped = Stop.MEMORY
                call.reason = (
                    f"the component needs more than the memory limit of {limits.memory_bytes} "
                    "bytes at start"
                )
            raise
        handle = instance.get_func(store, fn.handle_index)
        assert handle is not None, "checked at load"
        request, outparam = http.incoming(call)
        handle(store, request, outparam)
    except wasmtime.WasmtimeError as err:
        error = err
    return error, store.get_fuel()


def _fits_uncapped(
    engine: wasmtime.Engine, fn: LoadedComponent, limits: Limits, budget: int
) -> bool:
    """Does the component instantiate without the memory cap? Then the cap stopped it: a
    component does not declare its core memories anywhere the host can read them, so a
    failed instantiation (rare) is tried once more without the cap to tell."""
    try:
        fn.linker.instantiate(_store(engine, limits, budget, capped=False), fn.component)
    except wasmtime.WasmtimeError:
        return False
    return True


def _response(call: Call) -> HttpResponse:
    if call.response is None:
        return HttpResponse(500, error="no_response")
    headers = tuple(
        (name, value.decode("latin-1"))
        for name, value in call.response.headers
        if name.lower() not in _SERVER_FIELDS
    )
    return HttpResponse(
        call.response.status, headers, bytes(call.body.data), error=call.response.error
    )


def _classify(
    result: InvocationResult,
    call: Call,
    error: wasmtime.WasmtimeError | None,
    inv: Invocation,
    *,
    out_of_fuel: bool,
) -> InvocationResult:
    def ended(outcome: Outcome, exit_code: int, message: str) -> InvocationResult:
        return dataclasses.replace(result, outcome=outcome, exit_code=exit_code, message=message)

    if call.stopped is Stop.OVERFLOW:
        return ended(Outcome.OUTPUT_TOO_LARGE, EXIT_OUTPUT_TOO_LARGE, call.reason)
    timed_out = call.stopped is Stop.TIMEOUT or (error is not None and call.left_s() <= 0)
    if timed_out:
        return ended(Outcome.TIMEOUT, EXIT_TIMEOUT, f"timed out after {inv.limits.timeout_ms} ms")
    if call.stopped is Stop.MEMORY:
        return ended(Outcome.OUT_OF_MEMORY, EXIT_OOM, call.reason)
    if call.stopped is Stop.EXIT:
        return dataclasses.replace(result, exit_code=call.exit_code or 0)
    if out_of_fuel and error is not None:
        return ended(Outcome.TRAP, EXIT_TRAP, f"out of fuel (limit {inv.limits.fuel})")
    if call.stopped in (Stop.DENIED, Stop.MISUSE):
        return ended(Outcome.TRAP, EXIT_TRAP, call.reason)
    if error is not None:
        return ended(Outcome.TRAP, EXIT_TRAP, error_text(error))
    return result
