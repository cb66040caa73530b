"""Reading a module's declared shape without compiling it, the deploy bounds, and a fuzz test
that nothing but InvalidModule ever escapes the reader."""

from __future__ import annotations

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from functions import wat_module
from wasm_runtime.engine import check_header, inspect, validate_module
from wasm_runtime.errors import InvalidModule
from wasm_runtime.shape import (
    MIB,
    ModuleBounds,
    check_memory_cap,
    check_shape,
    read_shape,
)

START = '(func (export "_start"))'


def module(body: str) -> bytes:
    return wasmtime.wat2wasm(f"(module {body})")


def test_shape_agrees_with_wasmtime_on_the_examples() -> None:
    for name in ("hello", "echo", "cgi", "misbehave"):
        wasm = wat_module(name)
        shape = read_shape(wasm)
        assert shape.memory_min_bytes == validate_module(wasm).memory_min_bytes
        assert shape.functions >= 1 and shape.code_bytes > 0


def test_memory_tables_and_functions_are_read() -> None:
    wasm = module(
        '(import "env" "t" (table 7 funcref)) (memory (export "memory") 3 10) '
        "(table 50 funcref) (func) (func (drop (i32.const 1))) " + START
    )
    shape = read_shape(wasm)
    assert shape.memory_min_bytes == 3 * 64 * 1024
    assert shape.table_min_elements == 50
    assert shape.functions == 3
    assert (shape.memories, shape.tables) == (1, 2)


def test_imported_memory_counts() -> None:
    shape = read_shape(module('(import "env" "m" (memory 2048)) ' + START))
    assert shape.memory_min_bytes == 128 * MIB


def test_a_memory_minimum_above_the_cap_is_refused() -> None:
    shape = read_shape(module('(memory (export "memory") 65536) ' + START))  # 4 GiB
    with pytest.raises(InvalidModule) as info:
        check_memory_cap(shape, 64 * MIB)
    assert info.value.reason == "memory_above_cap"
    assert "4096 MiB" in info.value.message and "64 MiB" in info.value.message
    check_memory_cap(shape, 4096 * MIB)  # exactly the cap is fine


@pytest.mark.parametrize(
    ("bounds", "body", "reason"),
    [
        (ModuleBounds(functions_max=2), "(func) (func) (func)", "too_many_functions"),
        (ModuleBounds(body_max_bytes=8), "(func " + "(nop)" * 20 + ")", "function_too_large"),
        (ModuleBounds(code_max_bytes=16), "(func) " * 10, "code_too_large"),
        (ModuleBounds(), "(table 200000 funcref)", "table_too_large"),
        (ModuleBounds(), '(import "env" "m" (memory 1)) (memory 1)', "too_many_memories"),
        (ModuleBounds(), "(table 1 funcref) " * 5, "too_many_tables"),
    ],
)
def test_each_bound_has_its_reason(bounds: ModuleBounds, body: str, reason: str) -> None:
    shape = read_shape(module(body + " " + START))
    with pytest.raises(InvalidModule) as info:
        check_shape(shape, bounds)
    assert info.value.reason == reason


def test_inspect_refuses_before_compiling() -> None:
    """A table above the limit never reaches wasmtime: the reader's reason, not compile's."""
    with pytest.raises(InvalidModule) as info:
        inspect(module('(table 1000000 funcref) (memory (export "memory") 1) ' + START))
    assert info.value.reason == "table_too_large"


def test_truncated_modules_are_malformed() -> None:
    wasm = wat_module("echo")
    with pytest.raises(InvalidModule) as info:
        read_shape(wasm[: len(wasm) // 2])
    assert info.value.reason == "malformed"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_only_invalid_module_escapes(data: st.DataObject) -> None:
    wasm = bytearray(wat_module("echo"))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(8, len(wasm) - 1))
        wasm[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(wasm)))
    blob = bytes(wasm[:cut])
    check_header(blob)
    try:
        shape = read_shape(blob)
    except InvalidModule as err:
        assert err.reason == "malformed"
    else:
        assert shape.functions >= 0 and shape.memory_min_bytes >= 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_fuzz_arbitrary_bytes(tail: bytes) -> None:
    try:
        read_shape(b"\0asm\x01\0\0\0" + tail)
    except InvalidModule as err:
        assert err.reason == "malformed"
