"""Two costs of wasmtime-py 50.0.1's component values, taken out of every call.

**Host function types, once.** For every call of a host function, wasmtime-py rebuilds
its parameter and result types from C (a variant's cases one by one: wasi:http's
``error-code`` has 39) and works out again whether each variant is tagged. Under TCG that
was about 1 ms a host call, most of a small component's run. A host function's type is
fixed (its linker serves one component), so it is built once per function, and a type
remembers whether it is tagged.

**``list<u8>`` as bytes in one copy**, not a Python call per byte. wasmtime-py converts
a ``list<u8>`` between ``bytes`` and its C value list one element at a time: about 1.5 s
per MiB each way, so a 4 MiB response body took longer than most timeouts. The C list is
an array of 32-byte ``wasmtime_component_val_t`` (kind at offset 0, value at offset 8), so
the bytes can be written to and read from it with strided copies: 7-9x faster.

**A scratch set per thread.** wasmtime-py tests an untagged variant's cases against one
module-wide set it clears and refills on every value; two calls lowering a variant at
once on two threads (the agent runs a VM's calls on several) would empty each other's.

wasmtime is pinned in pyproject.toml; should its layout or names ever differ from the ones
this assumes, the stock code stays in place.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import _enter, _linker, _types

_VAL_BYTES = ctypes.sizeof(ffi.wasmtime_component_val_t)
_VALUE_AT = ffi.wasmtime_component_val_t.of.offset
_U8_KIND = bytes([ffi.WASMTIME_COMPONENT_U8.value])

_stock_to_c = _types.ListType.convert_to_c
_stock_from_c = _types.ListType.convert_from_c


def _to_c(self: _types.ListType, store: Any, val: Any, ptr: Any) -> None:
    if not isinstance(val, bytes) or not isinstance(self.element, _types.U8):
        _stock_to_c(self, store, val, ptr)
        return
    n = len(val)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        array = (ctypes.c_char * (n * _VAL_BYTES)).from_address(ctypes.addressof(raw.data.contents))
        view = memoryview(array).cast("B")
        view[0::_VAL_BYTES] = _U8_KIND * n
        view[_VALUE_AT::_VAL_BYTES] = val
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _from_c(self: _types.ListType, c: Any) -> Any:
    if not isinstance(self.element, _types.U8):
        return _stock_from_c(self, c)
    n = c.of.list.size
    data = ctypes.string_at(c.of.list.data, n * _VAL_BYTES)[_VALUE_AT::_VAL_BYTES] if n else b""
    ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))
    return data


# A host function's (parameter types, result type), by its handle in wasmtime-py's slab
# (handles are never reused); dropped when wasmtime finalizes the function.
_FUNC_TYPES: dict[int, tuple[list[Any], Any]] = {}
_stock_tagged = _types.VariantLikeType._tagged


def _tagged(self: Any) -> bool:
    cached: bool | None = self.__dict__.get("_unifaas_tagged")
    if cached is None:
        cached = self.__dict__["_unifaas_tagged"] = _stock_tagged(self)
    return cached


@ffi.wasmtime_component_func_callback_t
def _func_impl(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    def run(store: Any) -> None:
        types = _FUNC_TYPES.get(idx or 0)
        if types is None:
            with _types.FuncType._from_ptr(ty_raw, owner=store) as fty:
                types = _FUNC_TYPES[idx or 0] = ([ty for _, ty in fty.params], fty.result)
        params, result_ty = types
        func = _linker.FUNCTIONS.get(idx or 0)
        result = func(store, *(ty.convert_from_c(args[i]) for i, ty in enumerate(params)))
        if result_ty is not None:
            result_ty.convert_to_c(store, result, results)

    return _enter.catch_exceptions(context, run)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _func_finalize(idx):  # type: ignore[no-untyped-def]
    _FUNC_TYPES.pop(idx or 0, None)
    if _linker.FUNCTIONS:
        _linker.FUNCTIONS.deallocate(idx or 0)


class _PerThreadSet:
    """The set operations wasmtime-py's scratch set is used with, on a set of each thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _set(self) -> set[type]:
        found: set[type] | None = getattr(self._local, "set", None)
        if found is None:
            found = self._local.set = set()
        return found

    def clear(self) -> None:
        self._set().clear()

    def add(self, item: type) -> None:
        self._set().add(item)

    def __iter__(self) -> Iterator[type]:
        return iter(self._set())


def install() -> bool:
    """Use both when wasmtime-py is the one they were written for (its values laid out, and
    its host-function callback named, as they assume)."""
    expected = (_linker, "func_impl"), (_types, "case_test_cache")
    if (_VAL_BYTES, _VALUE_AT) != (32, 8) or not all(hasattr(m, n) for m, n in expected):
        return False
    _types.ListType.convert_to_c = _to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _from_c  # type: ignore[method-assign]
    _types.VariantLikeType._tagged = _tagged  # type: ignore[method-assign]
    _types.case_test_cache = _PerThreadSet()  # type: ignore[assignment]
    _linker.func_impl = _func_impl  # add_func reads the module's global when it runs
    _linker.func_finalize = _func_finalize
    return True


INSTALLED = install()
