"""Scheduler fixtures over the shared embedded redis-server (see tests/conftest.py)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from scheduler.registry.registry import Registry
from scheduler.state.store import StateStore


@pytest.fixture
def store(redis: aioredis.Redis) -> StateStore:
    return StateStore(redis)


@pytest.fixture
def registry(redis: aioredis.Redis) -> Registry:
    return Registry(redis)
