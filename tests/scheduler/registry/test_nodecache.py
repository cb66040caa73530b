"""The node's cache of the registry, over the real (embedded) redis-server: versions follow
change notifications from any node; artifacts stay."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from scheduler.errors import FunctionNotFound
from scheduler.model import FunctionConfig, FunctionVersion
from scheduler.registry.nodecache import NodeCache
from scheduler.registry.registry import Registry
from tests.conftest import wasm


async def until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_versions_follow_changes_made_elsewhere(redis: aioredis.Redis) -> None:
    mine, other = Registry(redis), Registry(redis)  # this node's registry, another node's
    cache = NodeCache(mine)
    follower = asyncio.create_task(cache.follow_changes())
    try:
        await until(lambda: cache.following)
        seen = cache._forgets
        await other.deploy("f", wasm("echo"), FunctionConfig())
        await until(lambda: cache._forgets > seen)  # its notification arrived
        assert (await cache.current("f")).version == 1
        # Changed behind its back, with no notification: the node keeps what it has.
        await redis.hset("unifaas:fn:f", "current", "99")
        assert (await cache.current("f")).version == 1
        await redis.hset("unifaas:fn:f", "current", "1")
        await other.deploy("f", wasm("hello"), FunctionConfig())  # notifies
        await until(lambda: "f" not in cache._versions)
        assert (await cache.current("f")).version == 2
        await other.delete("f")
        await until(lambda: "f" not in cache._versions)
        try:
            await cache.current("f")
        except FunctionNotFound:
            pass
        else:
            raise AssertionError("a deleted function was still served from the cache")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_nothing_is_cached_unless_notifications_arrive(redis: aioredis.Redis) -> None:
    registry = Registry(redis)
    cache = NodeCache(registry)  # not following
    await registry.deploy("g", wasm("echo"), FunctionConfig())
    assert (await cache.current("g")).version == 1
    await registry.deploy("g", wasm("hello"), FunctionConfig())
    assert (await cache.current("g")).version == 2


async def test_artifacts_are_kept_within_their_budget(redis: aioredis.Redis) -> None:
    registry = Registry(redis)
    fv = await registry.deploy("h", wasm("echo"), FunctionConfig())
    cache = NodeCache(registry)
    artifact, files = await cache.artifacts(fv)
    assert files is None
    await redis.delete(f"unifaas:blob:{fv.artifact_sha256}")
    assert (await cache.artifacts(fv))[0] == artifact  # from the node, not Redis
    small = NodeCache(registry, blob_budget_bytes=10)
    other = await registry.deploy("i", wasm("hello"), FunctionConfig())
    await small.artifacts(other)
    assert small._blob_bytes == 0  # too big to keep


async def test_a_read_overlapping_a_change_is_not_cached() -> None:
    fv = FunctionVersion("f", 1, "m", "a", None, FunctionConfig(), 0.0)
    release = asyncio.Event()

    class SlowRegistry:
        async def current(self, name: str) -> FunctionVersion:
            await release.wait()
            return fv

    cache = NodeCache(SlowRegistry())  # type: ignore[arg-type]
    cache.following = True
    read = asyncio.create_task(cache.current("f"))
    await asyncio.sleep(0)
    cache.forget("f")  # a change notified while the read was under way
    release.set()
    assert await read == fv
    assert "f" not in cache._versions  # the next call reads again
    assert await cache.current("f") == fv and "f" in cache._versions
