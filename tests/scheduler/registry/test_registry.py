"""Registry over a real redis-server: deploy validation, versions, rollback, records, nodes."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import tarfile
import time
from typing import Any
from unittest import mock

import pytest
import redis.asyncio as aioredis

from scheduler.errors import FunctionNotFound, InvalidConfig, InvocationNotFound
from scheduler.model import FunctionConfig, InvocationRecord, NodeRecord, StartKind, WarmVersion
from scheduler.registry.registry import Registry
from tests.conftest import artifact, wasm
from wasm_runtime.compiler import CompileLimits, precompile_isolated
from wasm_runtime.errors import InvalidModule


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def record(i: int, function: str = "hello") -> InvocationRecord:
    return InvocationRecord(
        id=f"inv-{i}",
        function=function,
        version=1,
        start=StartKind.COLD,
        outcome="ok",
        exit_code=0,
        status=200,
        total_ms=12.0,
        vm_ms=3.25,
        stderr_tail="",
        created_at=time.time(),
    )


async def test_deploy_stores_blobs_and_creates_versions(registry: Registry) -> None:
    tar = make_tar({"data/a.txt": b"A"})
    config = FunctionConfig(abi="wagi", env={"K": "v"}, timeout_s=2.5, memory_mib=32)
    v1 = await registry.deploy("hello", wasm("hello"), config, tar)
    assert (v1.name, v1.version, v1.config) == ("hello", 1, config)
    art, files = await registry.artifacts(v1)
    assert art == artifact("hello")
    assert files == tar
    assert await registry.blob(v1.module_sha256) == wasm("hello")

    v2 = await registry.deploy("hello", wasm("echo"), FunctionConfig())
    assert v2.version == 2 and v2.files_sha256 is None
    assert await registry.artifacts(v2) == (artifact("echo"), None)
    assert await registry.current("hello") == v2
    assert await registry.version("hello", 1) == v1
    info = await registry.get("hello")
    assert (info.current, info.versions) == (2, [1, 2])
    assert info.created_at <= info.updated_at


async def test_same_module_is_compiled_once(registry: Registry) -> None:
    with mock.patch(
        "scheduler.registry.registry.precompile_isolated", wraps=precompile_isolated
    ) as spy:
        a = await registry.deploy("a", wasm("hello"), FunctionConfig())
        b = await registry.deploy("b", wasm("hello"), FunctionConfig(memory_mib=16))
    assert spy.call_count == 1
    assert a.artifact_sha256 == b.artifact_sha256
    # Its size too, compiled or cached (placement counts it), and as read back.
    assert a.artifact_bytes == b.artifact_bytes == len(artifact("hello"))
    assert (await registry.current("b")).artifact_bytes == len(artifact("hello"))


@pytest.mark.parametrize("name", ["", "Hello", "-x", "a_b", "a" * 64, "a:b", "a/b", "é"])
async def test_bad_names_are_refused(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        await registry.deploy(name, wasm("hello"), FunctionConfig())
    assert info.value.field == "name"


async def test_good_names_are_accepted(registry: Registry) -> None:
    for name in ("a", "0", "a-b-9", "z" * 63):
        await registry.deploy(name, wasm("hello"), FunctionConfig())
    assert [i.name for i in await registry.list()] == sorted(["a", "0", "a-b-9", "z" * 63])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 0),
        ("timeout_s", 300.5),
        ("memory_mib", 0),
        ("memory_mib", 1025),
        ("concurrency", 0),
        ("concurrency", 65),
        ("max_vms", 0),
        ("max_vms", 65),
        ("min_warm", -1),
        ("min_warm", 5),
        ("keep_alive_s", -1),
        ("fuel", 0),
        ("abi", "cgi"),
    ],
)
async def test_config_out_of_range_is_refused(registry: Registry, field: str, value: Any) -> None:
    config = dataclasses.replace(FunctionConfig(), **{field: value})
    with pytest.raises(InvalidConfig) as info:
        await registry.deploy("f", wasm("hello"), config)
    assert info.value.field == field
    with pytest.raises(FunctionNotFound):
        await registry.get("f")


async def test_config_edges_are_accepted(registry: Registry) -> None:
    config = FunctionConfig(
        timeout_s=300, memory_mib=1024, concurrency=64, max_vms=64, min_warm=64, keep_alive_s=0
    )
    assert (await registry.deploy("f", wasm("hello"), config)).config == config


async def test_invalid_module_is_refused_and_nothing_stored(registry: Registry) -> None:
    with pytest.raises(InvalidModule):
        await registry.deploy("f", b"(module)", FunctionConfig())
    with pytest.raises(InvalidModule):
        await registry.deploy("f", b"\0asm\x01\0\0\0", FunctionConfig())  # no _start
    assert await registry.list() == []


@pytest.mark.parametrize(
    "files",
    [b"not a tar at all", make_tar({"../escape": b"x"}), make_tar({"/abs": b"x"})],
)
async def test_bad_files_bundle_is_refused(registry: Registry, files: bytes) -> None:
    with pytest.raises(InvalidConfig) as info:
        await registry.deploy("f", wasm("hello"), FunctionConfig(), files)
    assert info.value.field == "files"


async def test_unknown_functions(registry: Registry) -> None:
    for call in (
        registry.get("x"),
        registry.current("x"),
        registry.version("x", 1),
        registry.delete("x"),
        registry.rollback("x"),
    ):
        with pytest.raises(FunctionNotFound):
            await call
    await registry.deploy("f", wasm("hello"), FunctionConfig())
    with pytest.raises(FunctionNotFound) as info:
        await registry.version("f", 9)
    assert (info.value.name, info.value.version) == ("f", 9)


async def test_rollback(registry: Registry) -> None:
    for _ in range(3):
        await registry.deploy("f", wasm("hello"), FunctionConfig())
    assert (await registry.rollback("f")).version == 2
    assert (await registry.current("f")).version == 2
    assert (await registry.rollback("f", 1)).version == 1
    with pytest.raises(InvalidConfig):
        await registry.rollback("f")  # nothing before version 1
    with pytest.raises(FunctionNotFound):
        await registry.rollback("f", 4)
    assert (await registry.current("f")).version == 1
    # a deploy after a rollback gets a fresh number and becomes current
    assert (await registry.deploy("f", wasm("hello"), FunctionConfig())).version == 4
    assert (await registry.get("f")).current == 4


async def test_delete(registry: Registry) -> None:
    fv = await registry.deploy("f", wasm("hello"), FunctionConfig())
    await registry.deploy("g", wasm("hello"), FunctionConfig())
    await registry.delete("f")
    with pytest.raises(FunctionNotFound):
        await registry.get("f")
    assert [i.name for i in await registry.list()] == ["g"]
    assert await registry.blob(fv.module_sha256) == wasm("hello")  # blobs stay


async def test_invocation_records(registry: Registry) -> None:
    recs = [record(i) for i in range(5)]
    for rec in recs:
        await registry.record_invocation(rec)
    await registry.record_invocation(record(99, function="other"))
    assert await registry.invocation("inv-3") == recs[3]
    assert await registry.recent_invocations("hello", limit=2) == [recs[4], recs[3]]
    assert await registry.recent_invocations("hello") == recs[::-1]
    with pytest.raises(InvocationNotFound) as info:
        await registry.invocation("nope")
    assert info.value.invocation_id == "nope"


def node(node_id: str, host: str, vms: int) -> NodeRecord:
    warm = (WarmVersion("f@1", vms=1, in_flight=1, free_slots=3),)
    return NodeRecord(node_id, host, 1, "http://h:1", 10.0, 11.0, vms, 8, 0, 2, 1, warm)


async def test_nodes(registry: Registry) -> None:
    assert await registry.list_nodes() == []
    await registry.register_node(node("n1", "h", 2), ttl_s=3)
    await registry.register_node(node("n1", "h", 3), ttl_s=3)
    await registry.register_node(node("n2", "k", 0), ttl_s=3)
    assert await registry.list_nodes() == [node("n1", "h", 3), node("n2", "k", 0)]
    assert (await registry.list_nodes())[0].warm_slots("f") == 3
    await registry.unregister_node("n1")
    assert [n.id for n in await registry.list_nodes()] == ["n2"]


async def test_deploy_compiles_off_the_event_loop(registry: Registry) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await registry.deploy("f", wasm("misbehave"), FunctionConfig())
    finally:
        task.cancel()
    assert ticks > 1


async def test_a_module_over_the_compile_limits_is_refused_and_nothing_stored(
    redis: aioredis.Redis,
) -> None:
    registry = Registry(redis, CompileLimits(artifact_bytes=1000))
    with pytest.raises(InvalidModule) as refused:
        await registry.deploy("big", wasm("echo"), FunctionConfig())
    assert refused.value.reason == "artifact_too_large"
    assert await registry.list() == []


async def test_several_versions_are_read_at_once_in_the_order_asked(registry: Registry) -> None:
    for memory_mib in (32, 48, 64):
        await registry.deploy("f", wasm("hello"), FunctionConfig(memory_mib=memory_mib))
    many = await registry.versions("f", [3, 1, 2])
    assert [fv.version for fv in many] == [3, 1, 2]
    assert many == [await registry.version("f", v) for v in (3, 1, 2)]
    assert await registry.versions("f", []) == []
    with pytest.raises(FunctionNotFound):
        await registry.versions("f", [1, 7])
