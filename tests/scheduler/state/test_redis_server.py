"""EmbeddedRedis: persistence across restarts, clean-up on every path, clear errors."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from scheduler.errors import RedisNotInstalled, RedisStartError, StateStoreError
from scheduler.state import redis_server
from scheduler.state.redis_server import (
    EmbeddedRedis,
    SentinelTarget,
    connect,
    parse_sentinel_url,
    redis_argv,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fake_binary(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-redis-server"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_argv() -> None:
    argv = redis_argv("redis-server", Path("/s/redis"), Path("/s/redis/redis.sock"))
    assert argv[0] == "redis-server"
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--port"] == "0"
    assert pairs["--unixsocket"] == "/s/redis/redis.sock"
    assert pairs["--unixsocketperm"] == "700"
    assert pairs["--dir"] == "/s/redis"
    assert pairs["--appendonly"] == "yes"
    assert pairs["--daemonize"] == "no"
    assert pairs["--save"] == ""


async def test_data_survives_a_restart_and_the_process_is_gone(tmp_path: Path) -> None:
    async with EmbeddedRedis(tmp_path) as server:
        pid = server.pid
        assert pid is not None and alive(pid)
        assert server.url == f"unix://{tmp_path / 'redis' / 'redis.sock'}"
        assert stat.S_IMODE((tmp_path / "redis" / "redis.sock").stat().st_mode) == 0o700
        client = await connect(server.url)
        await client.set("k", b"persisted")
        await client.aclose()
    assert not alive(pid)
    assert server.pid is None

    async with EmbeddedRedis(tmp_path) as server:
        assert server.pid != pid
        client = await connect(server.url)
        assert await client.get("k") == b"persisted"
        await client.aclose()


async def test_long_state_dir_uses_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    async with EmbeddedRedis(deep) as server:
        sock = server.socket_path
        assert len(str(sock)) <= redis_server.UNIX_PATH_MAX
        client = await connect(server.url)
        assert await client.ping()
        await client.aclose()
    assert not sock.parent.exists()


async def test_second_server_on_the_same_dir_is_refused(tmp_path: Path) -> None:
    async with EmbeddedRedis(tmp_path):
        with pytest.raises(RedisStartError, match="already uses"):
            async with EmbeddedRedis(tmp_path):
                pass


async def test_missing_binary_names_the_apt_package(tmp_path: Path) -> None:
    with pytest.raises(RedisNotInstalled, match="apt package redis-server"):
        async with EmbeddedRedis(tmp_path, binary="no-such-redis-server-binary"):
            pass


async def test_server_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path, 'echo "boom: bad config"; exit 3')
    server = EmbeddedRedis(tmp_path, binary=str(binary))
    with pytest.raises(RedisStartError, match="code 3") as info:
        async with server:
            pass
    assert "boom: bad config" in info.value.log_tail
    assert server.pid is None


async def test_server_that_never_answers_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_server, "START_TIMEOUT_S", 0.3)
    binary = fake_binary(tmp_path, f'echo $$ > "{tmp_path}/fake.pid"; exec sleep 60')
    with pytest.raises(RedisStartError, match="did not answer"):
        async with EmbeddedRedis(tmp_path, binary=str(binary)):
            pass
    pid = int((tmp_path / "fake.pid").read_text())
    assert not alive(pid)


async def test_connect_errors_are_state_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="bad Redis URL"):
        await connect("http://nope")
    with pytest.raises(StateStoreError, match="cannot reach"):
        await connect(f"unix://{tmp_path}/missing.sock")


async def test_a_killed_server_is_restarted_from_its_aof_and_clients_ride_it_out(
    tmp_path: Path,
) -> None:
    async with EmbeddedRedis(tmp_path) as server:
        client = await connect(server.url)
        try:
            await client.set("kept", b"yes")
            await asyncio.sleep(1.2)  # appendfsync everysec: on disk by now
            first = server.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            started = time.monotonic()
            # The client's retries span the restart: no error reaches the caller.
            assert await client.get("kept") == b"yes"
            assert time.monotonic() - started < 3.0
            assert server.restarts == 1 and server.pid not in (None, first)
            assert not alive(first)
        finally:
            await client.aclose()
        second = server.pid
    assert second is not None and not alive(second)


def test_sentinel_urls_are_parsed() -> None:
    assert parse_sentinel_url("redis+sentinel://a:1,b/mymaster/3") == SentinelTarget(
        (("a", 1), ("b", 26379)), "mymaster", 3
    )
    assert parse_sentinel_url("redis+sentinel://:s3cret@h:2/svc").password == "s3cret"
    for bad in ("redis+sentinel://h:1", "redis+sentinel:///svc", "redis+sentinel://h:x/svc"):
        with pytest.raises(StateStoreError, match="bad Sentinel URL"):
            parse_sentinel_url(bad)
