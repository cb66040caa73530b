"""Runs loaded functions: a fresh Store per call, limits applied, the outcome classified."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import wasmtime

from wasm_runtime import bundle, direct
from wasm_runtime.capture import Captured, RunStopper, SlotPool, set_stdin_bytes
from wasm_runtime.component import runner as component_runner
from wasm_runtime.component.linking import HANDLE, ComponentImports, link
from wasm_runtime.component.runner import LoadedComponent
from wasm_runtime.engine import (
    ENTRY_POINT,
    MEMORY_EXPORT,
    ModuleInfo,
    check_component,
    check_links,
    check_module,
    compile_component,
    compile_module,
    deserialize,
    deserialize_component,
    error_text,
    is_component,
    runtime_engine,
)
from wasm_runtime.errors import InvalidModule
from wasm_runtime.hostfuncs import Bridge, CallContext, calling
from wasm_runtime.ticker import TICK_MS, EpochTicker, deadline_ticks
from wasm_runtime.types import (
    EXIT_OOM,
    EXIT_OUTPUT_TOO_LARGE,
    EXIT_TIMEOUT,
    EXIT_TRAP,
    Invocation,
    InvocationResult,
    Outcome,
)

# Fuel given to unmetered calls: metering is compiled into every module (it is an
# engine setting), so "no limit" is a budget no call can spend.
UNMETERED_FUEL = 2**63 - 1

# wasmtime-py cannot make a failed memory.grow trap: the instruction returns -1
# and the program reacts as it likes (Rust and C runtimes abort with a trap or a
# non-zero exit). So a run that ends in a trap or a non-zero exit counts as out
# of memory when the room left below the cap is less than one plausible grow
# step: under 10% of the cap or under 1 MiB, whichever is larger.
OOM_HEADROOM_FRACTION = 0.10
OOM_HEADROOM_MIN_BYTES = 1024 * 1024


def near_memory_cap(memory_bytes: int, cap_bytes: int) -> bool:
    """The OOM rule above: could a failed memory.grow explain how this run ended?"""
    headroom = cap_bytes - memory_bytes
    return headroom < max(OOM_HEADROOM_FRACTION * cap_bytes, OOM_HEADROOM_MIN_BYTES)


# Table elements take host memory outside the linear-memory cap (8 bytes each);
# real modules use a few thousand.
TABLE_ELEMENTS_MAX = 1 << 17

DEFAULT_ARGV0 = "fn"
SHM = Path("/dev/shm")


def _memory_backed_dir() -> str | None:
    """Where a runtime of its own keeps call files: in memory when the host has /dev/shm
    (as the guest's root is), since each call truncates and rewrites its output files."""
    return str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None


@dataclasses.dataclass(eq=False)
class LoadedFunction:
    """A compiled module ready to instantiate, plus its unpacked files bundle."""

    name: str  # argv[0] of every call
    module: wasmtime.Module
    info: ModuleInfo
    files: bundle.BundleTree | None
    _pre: wasmtime.InstancePre = dataclasses.field(repr=False)
    # argv of a call without arguments, ready for wasmtime (most calls have none).
    _argv: direct.Argv = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._argv = direct.Argv([self.name])

    def argv(self, args: tuple[str, ...]) -> direct.Argv:
        return direct.Argv([self.name, *args]) if args else self._argv

    @property
    def files_dir(self) -> Path | None:
        return None if self.files is None else self.files.root

    @property
    def instance_pre(self) -> wasmtime.InstancePre:
        """The module linked against WASI, ready to instantiate (benches time it bare)."""
        return self._pre


class FunctionRuntime:
    """The wasm side of one agent process: the process's Engine and its ticker, many functions.

    ``invoke`` is thread-safe; each call runs in the calling thread.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        engine: wasmtime.Engine | None = None,
        free_after_answer: bool = False,
    ) -> None:
        """``free_after_answer``: keep each call's store until :meth:`drop_retired` (the
        agent's way: it drops them once its reply is out); else it is freed at return."""
        self.engine = engine or runtime_engine()
        # Every runtime on an engine shares its one ticker (two would advance the epoch
        # twice as fast and halve every timeout).
        self._ticker = EpochTicker.shared(self.engine)
        if work_dir is None:
            base = Path(tempfile.mkdtemp(prefix="unifaas-", dir=_memory_backed_dir()))
            # A runtime never closed (a bench's, a test's) is removed at exit at the latest:
            # these piled up in /dev/shm.
            self._finalizer: weakref.finalize[Any, Any] | None = weakref.finalize(
                self, shutil.rmtree, base, ignore_errors=True
            )
        else:
            self._finalizer = None
            base = Path(work_dir)
        self.work_dir = base
        self._functions_dir = base / "functions"
        self._calls_dir = base / "calls"
        self._functions_dir.mkdir(parents=True, exist_ok=True)
        self._calls_dir.mkdir(parents=True, exist_ok=True)
        self._slots = SlotPool(base / "slots")
        self._loaded: set[LoadedFunction | LoadedComponent] = set()
        self._lock = threading.Lock()
        # maxlen 0: a store appended is dropped at once.
        self._retired: collections.deque[wasmtime.Store] = collections.deque(
            maxlen=RETIRED_MAX if free_after_answer else 0
        )

    @property
    def epoch_ticks(self) -> int:
        """How often the shared ticker has advanced the epoch (it stands still when idle)."""
        return self._ticker.ticks

    def load(
        self,
        artifact: bytes | Path,
        *,
        precompiled: bool = True,
        files_tar: bytes | None = None,
        name: str = DEFAULT_ARGV0,
    ) -> LoadedFunction | LoadedComponent:
        """Prepare a function, a module or a component; raises InvalidModule for a bad
        artifact, module, component or bundle. A precompiled artifact in a file is mapped
        from it (the file may be unlinked once this returns)."""
        if precompiled:
            try:
                module = deserialize(self.engine, artifact)
            except InvalidModule:
                # A precompiled artifact does not say which it is; wasmtime refuses a
                # component's as a module at its first check, in microseconds.
                return self._load_component(artifact, True, files_tar, name)
            info = check_module(module)
        else:
            wasm = artifact.read_bytes() if isinstance(artifact, Path) else artifact
            if is_component(wasm):
                return self._load_component(wasm, False, files_tar, name)
            module, info = compile_module(wasm, self.engine)
        pre = check_links(self.engine, module)
        files = self._unpack(files_tar)
        fn = LoadedFunction(name=name, module=module, info=info, files=files, _pre=pre)
        with self._lock:
            self._loaded.add(fn)
        return fn

    def _unpack(self, files_tar: bytes | None) -> bundle.BundleTree | None:
        """The function's files bundle, unpacked once; each call gets a fresh copy of it."""
        if files_tar is None:
            return None
        files_dir = self._functions_dir / uuid.uuid4().hex
        files_dir.mkdir()
        try:
            bundle.extract_bundle(files_tar, files_dir)
            return bundle.BundleTree.scan(files_dir)
        except BaseException:
            shutil.rmtree(files_dir, ignore_errors=True)
            raise

    def _load_component(
        self, artifact: bytes | Path, precompiled: bool, files_tar: bytes | None, name: str
    ) -> LoadedComponent:
        if precompiled:
            component = deserialize_component(self.engine, artifact)
            info = check_component(self.engine, component)
        else:
            assert isinstance(artifact, bytes)  # read by load
            component, info = compile_component(artifact, self.engine)
        imports = ComponentImports(info.granted, info.denied, ())  # unknown ones refused
        handle = component.get_export_index(HANDLE, component.get_export_index(info.handler))
        if handle is None:  # check_component found it: a bug of ours if it is gone
            raise InvalidModule("no_http_handler", f"{info.handler} has no {HANDLE!r}")
        linker = link(self.engine, component)
        files = self._unpack(files_tar)
        fn = LoadedComponent(name, component, linker, info.handler, imports, handle, files)
        with self._lock:
            self._loaded.add(fn)
        return fn

    def unload(self, fn: LoadedFunction | LoadedComponent) -> None:
        """Forget ``fn`` and delete its unpacked files (calls in flight must have ended)."""
        with self._lock:
            self._loaded.discard(fn)
        if fn.files is not None:
            shutil.rmtree(fn.files.root, ignore_errors=True)

    @property
    def retired(self) -> int:
        """Stores of answered calls not freed yet."""
        return len(self._retired)

    def drop_retired(self) -> None:
        """Free the stores of the calls that have answered: call it once their answers are
        out (the agent does, after each reply)."""
        self._retired.clear()

    def close(self) -> None:
        """Remove what this runtime put on disk (the engine's shared ticker idles on)."""
        self.drop_retired()
        with self._lock:
            loaded = list(self._loaded)
        for fn in loaded:
            self.unload(fn)
        self._slots.close()
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> FunctionRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _fresh_files(self, files: bundle.BundleTree | None) -> Iterator[Path | None]:
        """A call's fresh copy of ``files`` (only a function with a bundle pays for one)."""
        if files is None:
            yield None
            return
        call_dir = self._calls_dir / uuid.uuid4().hex
        try:
            files.fresh_copy(call_dir)
            yield call_dir
        finally:
            shutil.rmtree(call_dir, ignore_errors=True)

    def invoke(
        self, fn: LoadedFunction | LoadedComponent, inv: Invocation, bridge: Bridge | None = None
    ) -> InvocationResult:
        """Run ``fn`` once in a fresh Store; never raises for anything the function does.

        ``bridge`` carries its hostcalls to the host (without one they answer UNAVAILABLE).
        """
        if fn.files is None:  # most functions: no fresh copy to make and remove
            return self._invoke_in(fn, inv, bridge, None)
        with self._fresh_files(fn.files) as files_root:
            return self._invoke_in(fn, inv, bridge, files_root)

    def _invoke_in(
        self,
        fn: LoadedFunction | LoadedComponent,
        inv: Invocation,
        bridge: Bridge | None,
        files_root: Path | None,
    ) -> InvocationResult:
        if isinstance(fn, LoadedComponent):
            return component_runner.invoke(
                self.engine, self._ticker, fn, inv, bridge, files_root, self._retired.append
            )
        return self._invoke_module(fn, inv, bridge, files_root)

    def _invoke_module(
        self, fn: LoadedFunction, inv: Invocation, bridge: Bridge | None, files_root: Path | None
    ) -> InvocationResult:
        started = time.perf_counter()
        context = CallContext(bridge, time.monotonic() + inv.limits.timeout_ms / 1000)
        stopper: RunStopper | None = None
        store: wasmtime.Store | None = None
        slot = self._slots.take()
        try:
            limits = inv.limits
            store = wasmtime.Store(self.engine)
            # One instance with one linear memory, so the per-memory cap wasmtime
            # enforces is the cap on all of the call's linear memory.
            store.set_limits(
                memory_size=limits.memory_bytes,
                table_elements=TABLE_ELEMENTS_MAX,
                instances=1,
                memories=1,
            )
            budget = limits.fuel if limits.fuel is not None else UNMETERED_FUEL
            store.set_fuel(budget)
            stopper = RunStopper(store)

            wasi = wasmtime.WasiConfig()
            fn.argv(inv.args).set(wasi)
            if inv.env:
                wasi.env = [list(pair) for pair in inv.env]
            if inv.stdin:
                set_stdin_bytes(wasi, inv.stdin)
            slot.attach(wasi, stopper, limits.stdout_max_bytes, limits.stderr_max_bytes)
            if files_root is not None:
                wasi.preopen_dir(str(files_root), "/")
            store.set_wasi(wasi)

            run = _Run(store)
            with self._ticker.running(slot.check), calling(context):
                store.set_epoch_deadline(deadline_ticks(limits.timeout_ms, TICK_MS))
                run.execute(fn)
            run.hostcall_timed_out = context.timed_out
            stopper.detach()
            captured = slot.finish()

            fuel_used = None
            if limits.fuel is not None:
                left = stopper.fuel_left if stopper.fuel_left is not None else store.get_fuel()
                fuel_used = budget - left
            return _classify(
                run,
                fn,
                inv,
                captured,
                fuel_used=fuel_used,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        finally:
            if stopper is not None:
                stopper.detach()
            slot.release()
            self._slots.give_back(slot)
            if store is not None:
                self._retired.append(store)


# Stores of calls that have answered, kept until the caller's answer is out (drop_retired):
# freeing one (its instance back to the pool, its WASI files closed) took 0.35-0.4 ms of a
# warm call in a TCG guest, before its reply could leave. Bounded, so a caller that never
# drops them holds at most this many of the engine's pooled slots (POOL_SLOTS).
RETIRED_MAX = 8
_MEMORY_NAME = MEMORY_EXPORT.encode()
_ENTRY_NAME = ENTRY_POINT.encode()


class _Run:
    """Instantiates and runs ``_start``, recording how it ended (wasmtime errors stop here)."""

    def __init__(self, store: wasmtime.Store) -> None:
        self.store = store
        self.exports = direct.Exports()
        self.instantiated = False
        self.exit_code: int | None = None  # set for a normal return or proc_exit
        self.trap: wasmtime.Trap | None = None
        # errors without a trap code: failed instantiation, failed host calls
        self.error: wasmtime.WasmtimeError | None = None
        self.hostcall_timed_out = False  # its time ran out while the host worked for it

    def execute(self, fn: LoadedFunction) -> None:
        store = self.store
        try:
            instance = fn._pre.instantiate(store)
            self.instantiated = True
            found = self.exports.find(store, instance, _MEMORY_NAME, _ENTRY_NAME)
            assert found  # checked when the module loaded
            self.exports.call_start(store)
            self.exit_code = 0
        except wasmtime.ExitTrap as err:
            self.exit_code = err.code
        except wasmtime.Trap as err:
            self.trap = err
        except wasmtime.WasmtimeError as err:
            self.error = err

    def memory_bytes(self) -> int:
        return self.exports.memory_bytes(self.store)


def _trap_name(trap: wasmtime.Trap) -> str:
    code = trap.trap_code
    return "" if code is None else code.name.lower()


def _classify(
    run: _Run,
    fn: LoadedFunction,
    inv: Invocation,
    captured: Captured,
    *,
    fuel_used: int | None,
    duration_ms: float,
) -> InvocationResult:
    limits = inv.limits
    memory_bytes = run.memory_bytes()
    exit_code = run.exit_code if run.exit_code is not None else EXIT_TRAP
    result = InvocationResult(
        outcome=Outcome.OK,
        exit_code=exit_code,
        stdout=captured.stdout,
        stderr=captured.stderr,
        duration_ms=duration_ms,
        fuel_used=fuel_used,
        memory_bytes=memory_bytes,
    )

    def ended(
        outcome: Outcome, exit_code: int, message: str, trap_code: str = ""
    ) -> InvocationResult:
        return dataclasses.replace(
            result, outcome=outcome, exit_code=exit_code, message=message, trap_code=trap_code
        )

    trap_code = "" if run.trap is None else _trap_name(run.trap)
    # Our own flag first: an output cap ends the run by emptying its fuel.
    if captured.overflowed is not None:
        stdout = captured.overflowed == "stdout"
        cap = limits.stdout_max_bytes if stdout else limits.stderr_max_bytes
        return ended(
            Outcome.OUTPUT_TOO_LARGE,
            EXIT_OUTPUT_TOO_LARGE,
            f"{captured.overflowed} exceeded its limit of {cap} bytes",
        )
    interrupted = run.trap is not None and run.trap.trap_code is wasmtime.TrapCode.INTERRUPT
    if interrupted or run.hostcall_timed_out:
        return ended(
            Outcome.TIMEOUT,
            EXIT_TIMEOUT,
            f"timed out after {limits.timeout_ms} ms",
            trap_code,
        )
    if run.trap is not None and run.trap.trap_code is wasmtime.TrapCode.OUT_OF_FUEL:
        return ended(Outcome.TRAP, EXIT_TRAP, f"out of fuel (limit {limits.fuel})", trap_code)
    if run.error is not None and run.instantiated:
        # A host call failed without a trap code, e.g. proc_exit with a status
        # outside [0, 126), which wasmtime refuses.
        return ended(Outcome.TRAP, EXIT_TRAP, error_text(run.error))
    if run.error is not None:
        # wasmtime reports "minimum memory exceeds the store limit" as a plain error
        # without a code; we recognise it from the module's declared minimum instead.
        if fn.info.memory_min_bytes > limits.memory_bytes:
            return ended(
                Outcome.OUT_OF_MEMORY,
                EXIT_OOM,
                f"the module needs {fn.info.memory_min_bytes} bytes of memory at start; "
                f"the limit is {limits.memory_bytes}",
            )
        return ended(Outcome.TRAP, EXIT_TRAP, f"instantiation failed: {error_text(run.error)}")
    near_cap = run.exports.has_memory and near_memory_cap(memory_bytes, limits.memory_bytes)
    if run.trap is not None:
        if near_cap:
            return ended(
                Outcome.OUT_OF_MEMORY,
                EXIT_OOM,
                f"linear memory limit of {limits.memory_bytes} bytes reached "
                f"({memory_bytes} in use), then: {error_text(run.trap)}",
                trap_code,
            )
        return ended(Outcome.TRAP, EXIT_TRAP, error_text(run.trap), trap_code)
    if exit_code != 0 and near_cap:
        return ended(
            Outcome.OUT_OF_MEMORY,
            exit_code,
            f"linear memory limit of {limits.memory_bytes} bytes reached "
            f"({memory_bytes} in use), then exit {exit_code}",
        )
    return result
