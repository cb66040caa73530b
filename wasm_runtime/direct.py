"""Two per-call steps taken through wasmtime's C API instead of wasmtime-py's wrappers.

Why: in the guest (TCG) every ctypes call and Python object costs ten to thirty times what
it does natively, and a warm call paid 0.29 ms for ``instance.exports(store)`` (it wraps
every export) and 0.45 ms for ``start(store)`` (it builds the function's type, its
parameter and result lists, before calling). A call needs two exports by name, and
``_start`` is checked to take and return nothing when the module loads, so neither is
needed. The error and trap handling is wasmtime-py's own (``enter_wasm``), so a call ends
in the same exceptions (``ExitTrap``, ``Trap``, ``WasmtimeError``) either way.
"""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern
from wasmtime._func import enter_wasm


def export(store: wasmtime.Store, instance: wasmtime.Instance, name: bytes) -> object | None:
    """The instance's export ``name`` (a Func, Memory, ...), or None when it has none."""
    item = ffi.wasmtime_extern_t()
    found = ffi.wasmtime_instance_export_get(
        store._context(),
        ctypes.byref(instance._instance),
        ctypes.cast(ctypes.c_char_p(name), ctypes.POINTER(ctypes.c_char)),
        len(name),
        ctypes.byref(item),
    )
    return wrap_extern(item) if found else None


def call_nullary(store: wasmtime.Store, func: wasmtime.Func) -> None:
    """Call ``func``, known to take no parameters and return nothing."""
    with enter_wasm(store) as trap:
        error = ffi.wasmtime_func_call(
            store._context(), ctypes.byref(func._func), None, 0, None, 0, trap
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
