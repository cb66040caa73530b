"""The one wasmtime engine configuration, module validation and host-side precompilation.

Host and guest build their Engine from :func:`engine_config` so that an artifact
precompiled on the host deserializes in the guest. Everything wasmtime raises while
compiling or checking a module is translated into :class:`InvalidModule` here.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from wasm_runtime import hostcalls, hostfuncs
from wasm_runtime.component import linking
from wasm_runtime.errors import InvalidModule
from wasm_runtime.shape import (
    WASM_PAGE_BYTES,
    ModuleBounds,
    ModuleShape,
    check_shape,
    read_shape,
)

WASI_MODULE = "wasi_snapshot_preview1"
ENTRY_POINT = "_start"
MEMORY_EXPORT = "memory"

WASM_MAGIC = b"\0asm"
_CORE_VERSION = b"\x01\x00\x00\x00"
_COMPONENT_LAYER = b"\x0d\x00\x01\x00"

# Cranelift x86-64 ISA flags. By default wasmtime infers them from the CPU it runs
# on, so an artifact built on an AVX-512 host is rejected by a guest CPU without
# those features. Pinning every flag makes the artifact depend only on this list
# (it is byte-identical to one built for the baseline target triple) and portable
# to any x86-64-v2 CPU. The names must be ones this wasmtime knows: an unknown
# name aborts the process when the Engine is created (it does not raise).
ISA_FLAGS_ON: tuple[str, ...] = (
    "has_sse3",
    "has_ssse3",
    "has_sse41",
    "has_sse42",
    "has_popcnt",
    "has_cmpxchg16b",
)
ISA_FLAGS_OFF: tuple[str, ...] = (
    "has_avx",
    "has_avx2",
    "has_fma",
    "has_bmi1",
    "has_bmi2",
    "has_lzcnt",
    "has_avx512f",
    "has_avx512vl",
    "has_avx512dq",
    "has_avx512bitalg",
    "has_avx512vbmi",
    "has_avx512vnni",
    "has_avx_vnni",
    "has_apx",
)


@dataclasses.dataclass(frozen=True)
class ComponentInfo:
    """What validation learned about a component that passed."""

    handler: str  # its wasi:http/incoming-handler export, e.g. "...@0.2.0"
    granted: tuple[str, ...]  # its imports this platform implements
    denied: tuple[str, ...]  # its imports known but not granted (a call of one traps)


@dataclasses.dataclass(frozen=True)
class ModuleInfo:
    """What validation learned about a module that passed."""

    imports: tuple[str, ...]  # "module.name", from wasi_snapshot_preview1 or unifaas
    exports: tuple[str, ...]
    memory_min_bytes: int
    memory_max_bytes: int | None  # None = the module declares no maximum


def engine_config() -> wasmtime.Config:
    """The Config used on both host and guest; artifacts are only compatible across equal ones."""
    config = wasmtime.Config()
    # Timeouts come from one shared ticker bumping the engine epoch.
    config.epoch_interruption = True
    # Fuel is optional per call, but metering is a compile-time property of the
    # code, so it is always compiled in; unmetered calls get a huge budget.
    config.consume_fuel = True
    # The code cache is off by default in wasmtime-py (and it refuses an explicit
    # "off"); we never enable it: the host ships precompiled artifacts instead.
    for flag in ISA_FLAGS_ON:
        config.cranelift_flag_set(flag, "true")
    for flag in ISA_FLAGS_OFF:
        config.cranelift_flag_set(flag, "false")
    return config


# The pooling allocator's slots: instances, memories, tables and stacks of calls that may
# run at once in one process (more at once fail to instantiate, so this is well above the
# agent's workers and any test's threads). Slots are address space, not memory.
POOL_SLOTS = 64
# Linear memory and tables a freed slot keeps resident and zeroes itself instead of
# handing the pages back to the kernel; under TCG every madvise/munmap also flushes
# QEMU's software TLB, which the next call pays for page by page.
POOL_KEEP_RESIDENT = 1 << 20
POOL_INSTANCE_BYTES = 16 << 20


def make_engine(*, pooling: bool = False) -> wasmtime.Engine:
    """An Engine of ``engine_config()``; ``pooling`` for one that runs calls (instances come
    from preallocated slots; compiled artifacts are the same either way)."""
    config = engine_config()
    if pooling:
        _use_pooling_allocator(config)
    return wasmtime.Engine(config)


def _use_pooling_allocator(config: wasmtime.Config) -> None:
    # wasmtime-py has no wrapper for it; its C API does.
    from wasmtime import _ffi as ffi

    from wasm_runtime.shape import ModuleBounds
    from wasm_runtime.types import MEMORY_CAP_MAX_MIB, MIB

    settings: dict[str, int] = {
        "total_core_instances": POOL_SLOTS,
        "total_memories": POOL_SLOTS,
        "total_tables": POOL_SLOTS,
        "total_stacks": POOL_SLOTS,
        "max_memory_size": MEMORY_CAP_MAX_MIB * MIB,
        # What deploy lets through must instantiate: tables up to the shape bound, a few
        # tables per module, and room for the instance state of many functions.
        "table_elements": ModuleBounds().table_elements_max,
        "max_tables_per_module": ModuleBounds().tables_max,
        "max_core_instance_size": POOL_INSTANCE_BYTES,
        "linear_memory_keep_resident": POOL_KEEP_RESIDENT,
        "table_keep_resident": POOL_KEEP_RESIDENT,
    }
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for name, value in settings.items():
            getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set")(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)


_default_engine: wasmtime.Engine | None = None
_runtime_engine: wasmtime.Engine | None = None
_default_engine_lock = threading.Lock()


def runtime_engine() -> wasmtime.Engine:
    """The process-wide Engine that runs calls (pooling allocator). One per process, as
    wasmtime intends: each pooled Engine reserves ~270 GiB of address space and ~130
    mappings up front, so one per runtime would run a process with many out of both."""
    global _runtime_engine
    with _default_engine_lock:
        if _runtime_engine is None:
            _runtime_engine = make_engine(pooling=True)
        return _runtime_engine


def default_engine() -> wasmtime.Engine:
    """A process-wide Engine for validation/precompilation when the caller has none."""
    global _default_engine
    with _default_engine_lock:
        if _default_engine is None:
            _default_engine = make_engine()
        return _default_engine


def _one_line(err: Exception) -> str:
    """wasmtime's multi-line "Caused by:" chains, as one line."""
    lines = [ln.strip() for ln in str(err).splitlines()]
    return ": ".join(ln for ln in lines if ln and ln != "Caused by:")


def error_text(err: Exception) -> str:
    """wasmtime's trap/error message rearranged for people: the cause first, then the backtrace."""
    text = str(err).strip()
    context, sep, cause = text.partition("\n\nCaused by:\n")
    if not sep:
        return text
    return f"{cause.strip()}\n{context.strip()}"


def _not_wasm_message(wasm: bytes) -> str:
    head = wasm[:64].lstrip()
    if not wasm:
        return "the module is empty (0 bytes)"
    if head.startswith((b"(module", b"(component", b";;", b"(;")):
        return (
            "this looks like WebAssembly text (WAT), not a binary module; "
            "compile it first, e.g. with wat2wasm or wasmtime.wat2wasm()"
        )
    return f"not a WebAssembly binary: it does not start with \\0asm (first bytes {wasm[:8]!r})"


def is_component(wasm: bytes) -> bool:
    """Whether ``wasm`` is a component (by its header; nothing else is checked)."""
    return wasm[:4] == WASM_MAGIC and wasm[4:8] == _COMPONENT_LAYER


def check_header(wasm: bytes) -> None:
    """Reject bytes that are not a core WebAssembly module, saying what they look like."""
    if wasm[:4] != WASM_MAGIC:
        raise InvalidModule("not_wasm", _not_wasm_message(wasm))
    version = wasm[4:8]
    if version == _COMPONENT_LAYER:
        raise InvalidModule(
            "component",
            "this is a WebAssembly component, where a core module was expected",
        )
    if version != _CORE_VERSION:
        raise InvalidModule(
            "not_wasm",
            f"unsupported WebAssembly binary version {version.hex()} (expected 01000000)",
        )


def check_module(module: wasmtime.Module) -> ModuleInfo:
    """Check that a compiled module is a WASI preview1 command unifaas can run."""
    imports = module.imports
    foreign = [
        f"{imp.module}.{imp.name}"
        for imp in imports
        if imp.module not in (WASI_MODULE, hostcalls.MODULE)
    ]
    if foreign:
        raise InvalidModule(
            "disallowed_imports",
            f"imports {', '.join(foreign)}; only {WASI_MODULE} and {hostcalls.MODULE} "
            "are available",
        )
    for imp in imports:
        if imp.module == hostcalls.MODULE:
            check_hostcall_import(imp.name or "", imp.type)
    exports = {exp.name: exp.type for exp in module.exports}
    start = exports.get(ENTRY_POINT)
    if start is None:
        raise InvalidModule(
            "no_start",
            f"no {ENTRY_POINT!r} export: unifaas runs WASI commands "
            "(a library/reactor module, or one built with --no-entry, has no _start)",
        )
    if not isinstance(start, wasmtime.FuncType) or start.params or start.results:
        raise InvalidModule(
            "bad_start_type",
            f"{ENTRY_POINT!r} must be a function taking no parameters and returning nothing",
        )
    memory = exports.get(MEMORY_EXPORT)
    if not isinstance(memory, wasmtime.MemoryType):
        others = [n for n, t in exports.items() if isinstance(t, wasmtime.MemoryType)]
        hint = f" (it exports memory as {', '.join(others)})" if others else ""
        raise InvalidModule(
            "no_memory", f"no exported memory named {MEMORY_EXPORT!r}, which WASI needs{hint}"
        )
    limits = memory.limits
    return ModuleInfo(
        imports=tuple(f"{imp.module}.{imp.name}" for imp in imports),
        exports=tuple(exports),
        memory_min_bytes=limits.min * WASM_PAGE_BYTES,
        memory_max_bytes=None if limits.max is None else limits.max * WASM_PAGE_BYTES,
    )


def _signature(params: list[str], results: list[str]) -> str:
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def check_hostcall_import(name: str, declared: object) -> None:
    """A ``unifaas`` import must name a hostcall and declare exactly its signature."""
    qualified = f"{hostcalls.MODULE}.{name}"
    if name not in hostcalls.SIGNATURES:
        raise InvalidModule(
            "unknown_hostcall",
            f"imports {qualified}, which does not exist; {hostcalls.MODULE} provides "
            f"{', '.join(sorted(hostcalls.SIGNATURES))}",
        )
    want = _signature(list(hostcalls.SIGNATURES[name]), list(hostcalls.RESULTS))
    if not isinstance(declared, wasmtime.FuncType):
        raise InvalidModule(
            "hostcall_signature", f"imports {qualified} as a non-function; it is {want}"
        )
    have = _signature([str(p) for p in declared.params], [str(r) for r in declared.results])
    if have != want:
        raise InvalidModule(
            "hostcall_signature", f"imports {qualified} as {have}; its signature is {want}"
        )


def check_links(engine: wasmtime.Engine, module: wasmtime.Module) -> wasmtime.InstancePre:
    """Resolve the module's imports against WASI and the hostcalls (catches unknown names
    and wrong signatures)."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    hostfuncs.define(linker)
    try:
        return linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as err:
        raise InvalidModule("link_failed", f"imports do not link: {_one_line(err)}") from err


DEPLOY_BOUNDS = ModuleBounds()


def inspect(wasm: bytes, bounds: ModuleBounds = DEPLOY_BOUNDS) -> ModuleShape:
    """What ``wasm`` declares, refused (InvalidModule) when it is no core module or
    exceeds ``bounds``: cheap, and before anything compiles it."""
    check_header(wasm)
    try:
        shape = read_shape(wasm)
    except InvalidModule:
        # wasmtime's validator says precisely what is wrong; should it find nothing,
        # the module still cannot be bounded, so it is refused all the same.
        try:
            wasmtime.Module.validate(default_engine(), wasm)
        except wasmtime.WasmtimeError as err:
            raise InvalidModule(
                "compile_failed", f"the module does not compile: {_one_line(err)}"
            ) from err
        raise
    check_shape(shape, bounds)
    return shape


def compile_module(
    wasm: bytes, engine: wasmtime.Engine | None = None
) -> tuple[wasmtime.Module, ModuleInfo]:
    """Compile and fully validate ``wasm``; the compiled module is returned for reuse."""
    engine = engine or default_engine()
    inspect(wasm)
    try:
        module = wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as err:
        raise InvalidModule(
            "compile_failed", f"the module does not compile: {_one_line(err)}"
        ) from err
    info = check_module(module)
    check_links(engine, module)
    return module, info


def validate_module(wasm: bytes, engine: wasmtime.Engine | None = None) -> ModuleInfo:
    """Raise InvalidModule (with a stable ``reason``) unless ``wasm`` is a runnable function."""
    return compile_module(wasm, engine)[1]


def compile_component(
    wasm: bytes, engine: wasmtime.Engine | None = None
) -> tuple[Component, ComponentInfo]:
    """Compile a component and check it can be served: it exports the wasi:http handler and
    imports nothing this platform does not know."""
    engine = engine or default_engine()
    try:
        component = Component(engine, wasm)
    except wasmtime.WasmtimeError as err:
        raise InvalidModule(
            "compile_failed", f"the component does not compile: {_one_line(err)}"
        ) from err
    return component, check_component(engine, component)


def check_component(engine: wasmtime.Engine, component: Component) -> ComponentInfo:
    handler = linking.handler_export(engine, component)
    if handler is None:
        raise InvalidModule(
            "no_http_handler",
            f"the component exports no {linking.HANDLER}@{linking.GRANTED_VERSION}.x with a "
            f"{linking.HANDLE!r} function: unifaas serves wasi:http/proxy components",
        )
    imports = linking.sort_imports(list(component.type.imports(engine)))
    if imports.unknown:
        raise InvalidModule(
            "unsupported_import",
            f"imports {', '.join(imports.unknown)}, which unifaas does not know; it knows "
            "WASI 0.2 (io, clocks, random, cli, filesystem, sockets, http, keyvalue, config) "
            "and Spin 2.0's interfaces",
        )
    return ComponentInfo(handler, imports.granted, imports.denied)


def precompile(wasm: bytes, engine: wasmtime.Engine | None = None) -> bytes:
    """Validate ``wasm`` (a module or a component) and return the artifact the guest
    deserializes (same engine_config)."""
    if is_component(wasm):
        component, _ = compile_component(wasm, engine)
        return bytes(component.serialize())
    module, _ = compile_module(wasm, engine)
    return bytes(module.serialize())


def deserialize_component(engine: wasmtime.Engine, artifact: bytes | Path) -> Component:
    """Load a precompiled component; InvalidModule when it is foreign or from another config.
    A file is mapped, not copied."""
    try:
        if isinstance(artifact, Path):
            return Component.deserialize_file(engine, str(artifact))
        return Component.deserialize(engine, artifact)
    except wasmtime.WasmtimeError as err:
        raise InvalidModule(
            "bad_artifact",
            f"the precompiled component cannot be loaded here: {_one_line(err)}",
        ) from err


def deserialize(engine: wasmtime.Engine, artifact: bytes | Path) -> wasmtime.Module:
    """Load a precompiled artifact; InvalidModule when it is foreign or from another config.
    A file is mapped, not copied, and the data of linear memory is mapped from it too."""
    try:
        if isinstance(artifact, Path):
            return wasmtime.Module.deserialize_file(engine, str(artifact))
        return wasmtime.Module.deserialize(engine, artifact)
    except wasmtime.WasmtimeError as err:
        raise InvalidModule(
            "bad_artifact",
            f"the precompiled artifact cannot be loaded here: {_one_line(err)} "
            "(precompile it with wasm_runtime.engine.precompile and the same wasmtime version)",
        ) from err
