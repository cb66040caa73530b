"""One embedded redis-server for the whole scheduler suite; every test starts from an empty DB."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from scheduler.redis_server import EmbeddedRedis, connect
from scheduler.registry import Registry
from scheduler.state import StateStore


@pytest.fixture(scope="session")
async def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedRedis]:
    async with EmbeddedRedis(tmp_path_factory.mktemp("state")) as server:
        yield server


@pytest.fixture(scope="session")
async def redis_client(embedded_redis: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = await connect(embedded_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis(redis_client: aioredis.Redis) -> aioredis.Redis:
    """The shared client, its database flushed so the test sees nothing of the others."""
    await redis_client.flushdb()
    return redis_client


@pytest.fixture
def store(redis: aioredis.Redis) -> StateStore:
    return StateStore(redis)


@pytest.fixture
def registry(redis: aioredis.Redis) -> Registry:
    return Registry(redis)
