"""``list<u8>`` as bytes in one copy, not a Python call per byte.

wasmtime-py 50.0.1 converts a ``list<u8>`` between ``bytes`` and its C value list one
element at a time: about 1.5 s per MiB each way, so a 4 MiB response body took longer
than most timeouts. The C list is an array of 32-byte ``wasmtime_component_val_t`` (kind
at offset 0, value at offset 8), so the bytes can be written to and read from it with
strided copies: 7-9x faster. wasmtime is pinned in pyproject.toml; should its value layout
ever differ from the one this assumes, the stock conversion stays in place.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import _types

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


def install() -> bool:
    """Use the fast conversion when wasmtime's values are laid out as it assumes."""
    if (_VAL_BYTES, _VALUE_AT) != (32, 8):
        return False
    _types.ListType.convert_to_c = _to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _from_c  # type: ignore[method-assign]
    return True


INSTALLED = install()
