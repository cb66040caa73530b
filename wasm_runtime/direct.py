"""Per-call steps taken through wasmtime's C API instead of wasmtime-py's wrappers.

Why: in the guest (TCG) every ctypes call and Python object costs ten to thirty times what
it does natively, and a warm call paid 0.29 ms for ``instance.exports(store)`` (it wraps
every export) and 0.45 ms for ``start(store)`` (it builds the function's type, its
parameter and result lists, before calling). A call needs two exports by name, and
``_start`` is checked to take and return nothing when the module loads, so neither is
needed; nor are Python objects for either export. A function's argv is made into a C array
once, not per call. The error and trap handling is wasmtime-py's own (``enter_wasm``), so
a call ends in the same exceptions (``ExitTrap``, ``Trap``, ``WasmtimeError``) either way.
"""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._func import enter_wasm


class Exports:
    """A call's two exports, as the C API's own values: no Python wrapper is made for them
    (in the guest, ``wrap_extern`` and its objects cost more than the lookups)."""

    __slots__ = ("_memory", "_start", "has_memory")

    def __init__(self) -> None:
        self._memory = ffi.wasmtime_extern_t()
        self._start = ffi.wasmtime_extern_t()
        self.has_memory = False

    def find(
        self, store: wasmtime.Store, instance: wasmtime.Instance, memory: bytes, start: bytes
    ) -> bool:
        """Look both up by name; False when the instance has no such start function."""
        context = store._context()
        self.has_memory = _get(context, instance, memory, self._memory) and (
            _kind(self._memory) == ffi.WASMTIME_EXTERN_MEMORY.value
        )
        found = _get(context, instance, start, self._start)
        return found and _kind(self._start) == ffi.WASMTIME_EXTERN_FUNC.value

    def call_start(self, store: wasmtime.Store) -> None:
        """Call the start function, known to take no parameters and return nothing."""
        with enter_wasm(store) as trap:
            error = ffi.wasmtime_func_call(
                store._context(), ctypes.byref(self._start.of.func), None, 0, None, 0, trap
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)

    def memory_bytes(self, store: wasmtime.Store) -> int:
        """The linear memory's size now (0 without one)."""
        if not self.has_memory:
            return 0
        size: int = ffi.wasmtime_memory_data_size(
            store._context(), ctypes.byref(self._memory.of.memory)
        )
        return size


def _kind(extern: ffi.wasmtime_extern_t) -> int:
    kind: int = extern.kind  # type: ignore[assignment]  # ctypes gives the field as an int
    return kind


def _get(context: object, instance: wasmtime.Instance, name: bytes, out: object) -> bool:
    return bool(
        ffi.wasmtime_instance_export_get(
            context,
            ctypes.byref(instance._instance),
            ctypes.cast(ctypes.c_char_p(name), ctypes.POINTER(ctypes.c_char)),
            len(name),
            ctypes.byref(out),  # type: ignore[arg-type]
        )
    )


class Argv:
    """A function's argv as the C array ``wasi_config_set_argv`` copies from, made once."""

    __slots__ = ("_array", "_count", "_strings")

    def __init__(self, argv: list[str]) -> None:
        self._count = len(argv)
        self._strings = [ctypes.c_char_p(a.encode()) for a in argv]  # what the array points to
        self._array = (ctypes.c_char_p * self._count)(*self._strings)

    def set(self, config: wasmtime.WasiConfig) -> None:
        array = ctypes.cast(self._array, ctypes.POINTER(ctypes.POINTER(ctypes.c_char)))
        if not ffi.wasi_config_set_argv(config.ptr(), self._count, array):
            raise wasmtime.WasmtimeError("failed to configure argv")
