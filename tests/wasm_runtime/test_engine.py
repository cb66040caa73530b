"""Engine config portability, module validation reasons, precompile/deserialize round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from wasm_runtime import engine
from wasm_runtime.engine import (
    ISA_FLAGS_OFF,
    ISA_FLAGS_ON,
    deserialize,
    engine_config,
    make_engine,
    precompile,
    validate_module,
)
from wasm_runtime.errors import InvalidModule

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def wat(source: str) -> bytes:
    return bytes(wasmtime.wat2wasm(source))


def example(name: str) -> bytes:
    return wat((FUNCTIONS / name / f"{name}.wat").read_text())


MEMORY = '(memory (export "memory") 1)'
START = '(func (export "_start"))'


def reason_of(wasm: bytes) -> InvalidModule:
    with pytest.raises(InvalidModule) as info:
        validate_module(wasm)
    return info.value


@pytest.fixture(scope="module")
def eng() -> wasmtime.Engine:
    return make_engine()


def test_isa_flags_keep_x86_64_v2_and_drop_everything_newer() -> None:
    assert {"has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"} <= set(ISA_FLAGS_ON)
    assert not set(ISA_FLAGS_ON) & set(ISA_FLAGS_OFF)
    for flag in ("has_avx", "has_avx2", "has_fma", "has_bmi1", "has_bmi2", "has_lzcnt"):
        assert flag in ISA_FLAGS_OFF
    assert "has_avx_vnni" in ISA_FLAGS_OFF
    assert {f for f in ISA_FLAGS_OFF if f.startswith("has_avx512")} >= {
        "has_avx512f",
        "has_avx512vl",
        "has_avx512dq",
        "has_avx512bitalg",
        "has_avx512vbmi",
        "has_avx512vnni",
    }


def test_artifacts_do_not_depend_on_the_host_cpu() -> None:
    # Same flags on an engine for the generic target triple (no CPU detection at
    # all): if the host's features leaked into our artifacts the bytes would differ.
    simd = wat(
        '(module (memory (export "memory") 1)'
        ' (func (export "f") (param v128 v128) (result v128)'
        "   (f32x4.mul (local.get 0) (i32x4.add (local.get 1) (local.get 0))))"
        ' (func (export "g") (param i32) (result i32) (i32.popcnt (i32.clz (local.get 0)))))'
    )
    baseline = engine_config()
    baseline.target = "x86_64-unknown-linux-gnu"
    ours = wasmtime.Module(make_engine(), simd).serialize()
    generic = wasmtime.Module(wasmtime.Engine(baseline), simd).serialize()
    assert bytes(ours) == bytes(generic)


def test_valid_module_info(eng: wasmtime.Engine) -> None:
    info = validate_module(example("hello"), eng)
    assert info.imports == ("wasi_snapshot_preview1.fd_write",)
    assert set(info.exports) == {"memory", "_start"}
    assert info.memory_min_bytes == 64 * 1024
    assert info.memory_max_bytes is None


@pytest.mark.parametrize(
    ("data", "reason", "hint"),
    [
        (b"", "not_wasm", "empty"),
        (b"\x7fELF\x02\x01\x01\x00", "not_wasm", "\\0asm"),
        (b'(module (func (export "_start")))', "not_wasm", "WAT"),
        (b"  ;; a comment\n(module)", "not_wasm", "wat2wasm"),
        (b"\0asm\x0d\x00\x01\x00", "component", "where a core module was expected"),
        (b"\0asm\x02\x00\x00\x00", "not_wasm", "version"),
        (b"\0asm\x01\x00\x00\x00\x01\xff", "compile_failed", "does not compile"),
    ],
)
def test_not_a_module(data: bytes, reason: str, hint: str) -> None:
    err = reason_of(data)
    assert err.reason == reason
    assert hint in err.message


def test_no_start() -> None:
    err = reason_of(wat(f"(module {MEMORY})"))
    assert err.reason == "no_start"
    assert "_start" in err.message


def test_start_with_wrong_type() -> None:
    err = reason_of(wat(f'(module {MEMORY} (func (export "_start") (param i32)))'))
    assert err.reason == "bad_start_type"
    err = reason_of(wat(f'(module {MEMORY} (global (export "_start") i32 (i32.const 0)))'))
    assert err.reason == "bad_start_type"


def test_imports_outside_wasi_are_named() -> None:
    err = reason_of(
        wat(
            '(module (import "env" "foo" (func)) (import "env" "bar" (func))'
            f' (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) {MEMORY} {START})'
        )
    )
    assert err.reason == "disallowed_imports"
    assert err.message == (
        "imports env.foo, env.bar; only wasi_snapshot_preview1 and unifaas are available"
    )


def test_unifaas_imports_are_checked_by_name_and_signature() -> None:
    good = wat(
        '(module (import "unifaas" "kv_get" (func (param i32 i32 i32 i32 i32) (result i32)))'
        '(import "unifaas" "kv_incr" (func (param i32 i32 i64 i32) (result i32)))'
        f" {MEMORY} {START})"
    )
    assert validate_module(good).imports == ("unifaas.kv_get", "unifaas.kv_incr")

    err = reason_of(wat(f'(module (import "unifaas" "kv_gte" (func)) {MEMORY} {START})'))
    assert err.reason == "unknown_hostcall"
    assert err.message.startswith("imports unifaas.kv_gte, which does not exist; unifaas provides")
    assert "http_request" in err.message

    err = reason_of(
        wat(
            '(module (import "unifaas" "kv_set" (func (param i32 i32 i32) (result i32)))'
            f" {MEMORY} {START})"
        )
    )
    assert err.reason == "hostcall_signature"
    assert err.message == (
        "imports unifaas.kv_set as (i32, i32, i32) -> (i32); "
        "its signature is (i32, i32, i32, i32) -> (i32)"
    )
    err = reason_of(wat(f'(module (import "unifaas" "kv_get" (global i32)) {MEMORY} {START})'))
    assert err.reason == "hostcall_signature"


def test_unknown_wasi_function_does_not_link() -> None:
    err = reason_of(
        wat(f'(module (import "wasi_snapshot_preview1" "no_such_call" (func)) {MEMORY} {START})')
    )
    assert err.reason == "link_failed"
    assert "no_such_call" in err.message


def test_no_exported_memory() -> None:
    assert reason_of(wat(f"(module {START})")).reason == "no_memory"
    err = reason_of(wat(f'(module (memory (export "mem") 1) {START})'))
    assert err.reason == "no_memory"
    assert "mem" in err.message


def test_precompile_round_trip(eng: wasmtime.Engine) -> None:
    artifact = precompile(example("hello"))
    module = deserialize(make_engine(), artifact)  # a different Engine, same config
    assert engine.check_module(module).imports == ("wasi_snapshot_preview1.fd_write",)
    assert isinstance(precompile(example("echo"), eng), bytes)


def test_precompile_validates_first() -> None:
    with pytest.raises(InvalidModule) as info:
        precompile(wat(f"(module {MEMORY})"))
    assert info.value.reason == "no_start"


def test_bad_artifacts(eng: wasmtime.Engine) -> None:
    artifact = precompile(example("hello"))
    for bad in (b"garbage", example("hello"), artifact[: len(artifact) // 2]):
        with pytest.raises(InvalidModule) as info:
            deserialize(eng, bad)
        assert info.value.reason == "bad_artifact"
        assert isinstance(info.value.__cause__, wasmtime.WasmtimeError)


def test_artifact_from_another_config_is_rejected() -> None:
    other = wasmtime.Config()  # no fuel metering, no epochs: incompatible code
    artifact = bytes(wasmtime.Module(wasmtime.Engine(other), example("hello")).serialize())
    with pytest.raises(InvalidModule) as info:
        deserialize(make_engine(), artifact)
    assert info.value.reason == "bad_artifact"
