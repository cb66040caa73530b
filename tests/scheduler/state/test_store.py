"""StateStore against a real redis-server: keys, Lua scripts, TTLs, error translation."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from scheduler.errors import FunctionNotFound, InvalidConfig, StateStoreError
from scheduler.state import store as state
from scheduler.state.store import StateStore, sha256_hex


def test_keys_share_the_prefix() -> None:
    keys = [
        state.blob_key("ab"),
        state.artifact_index_key("t", "ab"),
        state.functions_key(),
        state.function_key("f"),
        state.versions_key("f"),
        state.recent_key("f"),
        state.invocation_key("i"),
        state.nodes_key(),
        state.node_key("n"),
    ]
    assert all(k.startswith("unifaas:") for k in keys)
    assert len(set(keys)) == len(keys)


async def test_blobs_are_content_addressed_and_written_once(
    store: StateStore, redis: aioredis.Redis
) -> None:
    sha = await store.put_blob(b"hello")
    assert sha == sha256_hex(b"hello")
    assert await store.put_blob(b"hello") == sha
    assert await store.get_blob(sha) == b"hello"
    assert await store.blob_size(sha) == 5
    assert await store.get_blob("0" * 64) is None
    assert await store.blob_size("0" * 64) == 0
    assert await redis.dbsize() == 1


async def test_create_version_counts_up_and_becomes_current(store: StateStore) -> None:
    assert await store.create_version("f", {"n": 1}, 10.0) == 1
    assert await store.create_version("f", {"n": 2}, 20.0) == 2
    found = await store.get_function("f")
    assert found is not None
    meta, versions = found
    assert meta["current"] == "2"
    assert float(meta["created_at"]) == 10.0
    assert float(meta["updated_at"]) == 20.0
    assert versions == [1, 2]
    assert await store.get_version("f", 1) == {"n": 1}
    assert await store.get_version("f", 3) is None
    assert await store.function_page("", 10) == ([("f", meta, [1, 2])], None)


async def test_concurrent_creates_get_distinct_versions(store: StateStore) -> None:
    got = await asyncio.gather(*(store.create_version("f", {}, 1.0) for _ in range(20)))
    assert sorted(got) == list(range(1, 21))


async def test_rollback(store: StateStore) -> None:
    for n in range(3):
        await store.create_version("f", {"n": n}, 1.0)
    assert await store.rollback("f", None, 2.0) == 2
    assert await store.rollback("f", None, 3.0) == 1
    with pytest.raises(InvalidConfig):
        await store.rollback("f", None, 4.0)
    assert await store.rollback("f", 3, 5.0) == 3
    with pytest.raises(FunctionNotFound) as info:
        await store.rollback("f", 7, 6.0)
    assert info.value.version == 7
    with pytest.raises(FunctionNotFound):
        await store.rollback("nope", None, 1.0)
    found = await store.get_function("f")
    assert found is not None and found[0]["current"] == "3"


async def test_delete_removes_function_but_keeps_blobs(store: StateStore) -> None:
    sha = await store.put_blob(b"m")
    await store.create_version("f", {}, 1.0)
    await store.put_invocation("i1", "f", {"id": "i1"})
    assert await store.delete_function("f")
    assert not await store.delete_function("f")
    assert await store.get_function("f") is None
    assert await store.function_page("", 10) == ([], None)
    assert await store.recent_invocations("f", 10) == []
    assert await store.get_blob(sha) == b"m"
    # a new function of the same name starts over at version 1
    assert await store.create_version("f", {}, 2.0) == 1


async def test_functions_come_a_page_at_a_time_by_name(store: StateStore) -> None:
    for name in ("c", "a", "e", "b", "d"):
        await store.create_version(name, {}, 1.0)
    await store.create_version("b", {}, 2.0)
    first = await store.function_page("", 2)
    assert [row[0] for row in first.rows] == ["a", "b"] and first.next_after == "b"
    assert first.rows[1][2] == [1, 2]  # b's versions
    second = await store.function_page("b", 2)
    assert [row[0] for row in second.rows] == ["c", "d"] and second.next_after == "d"
    await store.delete_function("e")  # the last page is shorter, and says it is the last
    assert await store.function_page("d", 2) == ([], None)
    assert [row[0] for row in (await store.function_page("", 10)).rows] == ["a", "b", "c", "d"]


async def test_a_set_of_names_from_before_becomes_a_sorted_one(
    store: StateStore, redis: aioredis.Redis
) -> None:
    for name in ("x", "y"):
        await store.create_version(name, {}, 1.0)
    await redis.delete(state.functions_key())
    await redis.sadd(state.functions_key(), "x", "y")  # as an older unifaas wrote it
    assert [row[0] for row in (await store.function_page("", 10)).rows] == ["x", "y"]
    assert await redis.type(state.functions_key()) == b"zset"
    await redis.delete(state.functions_key())
    await redis.sadd(state.functions_key(), "x", "y")
    await store.create_version("z", {}, 1.0)  # deploys and deletes convert it too
    await store.delete_function("x")
    assert [row[0] for row in (await store.function_page("", 10)).rows] == ["y", "z"]


async def test_invocations_expire_and_each_function_keeps_its_newest(
    store: StateStore, redis: aioredis.Redis
) -> None:
    kept = StateStore(redis, records_kept=5)
    await kept.put_invocations([(f"i{i}", "f", {"id": f"i{i}"}) for i in range(3)])
    await kept.put_invocations([(f"i{i}", "f", {"id": f"i{i}"}) for i in range(3, 8)])
    await kept.put_invocation("g0", "g", {"id": "g0"})  # another function's are its own
    assert await redis.llen(state.recent_key("f")) == 5
    # The records that fell off the list went with it: a steady load cannot fill Redis.
    assert [await kept.get_invocation(f"i{i}") for i in range(3)] == [None, None, None]
    assert await kept.get_invocation("i3") == {"id": "i3"}
    assert await kept.get_invocation("g0") == {"id": "g0"}
    ttl = await redis.ttl(state.invocation_key("i3"))
    assert 0 < ttl <= state.INVOCATION_TTL_S
    recent = await kept.recent_invocations("f", 3)
    assert [r["id"] for r in recent] == ["i7", "i6", "i5"]
    await redis.delete(state.invocation_key("i7"))  # as if expired
    assert [r["id"] for r in await kept.recent_invocations("f", 2)] == ["i6"]
    assert await kept.get_invocation("missing") is None
    assert await kept.recent_invocations("f", 0) == []
    assert store.records_kept == state.RECORDS_KEPT > state.RECENT_INVOCATIONS


async def test_nodes_expire_and_are_pruned(store: StateStore, redis: aioredis.Redis) -> None:
    await store.put_node("a", {"host": "h1"})
    await store.put_node("b", {"host": "h2"}, ttl_s=1.5)
    assert 0 < await redis.pttl(state.node_key("b")) <= 1500
    await redis.delete(state.node_key("b"))  # as if its heartbeat expired
    assert await store.nodes() == {"a": {"host": "h1"}}
    assert await redis.smembers(state.nodes_key()) == {b"a"}


async def test_redis_errors_become_state_store_errors(
    store: StateStore, redis: aioredis.Redis
) -> None:
    await redis.set(state.function_key("f"), "not a hash")
    with pytest.raises(StateStoreError) as info:
        await store.get_function("f")
    assert info.value.__cause__ is not None


async def test_unreachable_redis_is_a_state_store_error() -> None:
    client = aioredis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(StateStoreError):
            await StateStore(client).get_blob("x")
    finally:
        await client.aclose()
