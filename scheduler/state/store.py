"""The function registry's, the invocation records' and the nodes' Redis commands.

Everything unifaas keeps in Redis goes through :class:`StateStore` or, for the
async invocation queue, :class:`scheduler.asyncq.queue.AsyncQueue`; their keys and
Lua scripts are all in :mod:`scheduler.state.keys`, and nothing else in the project
builds a key or runs a command. Every redis-py error is translated into
:class:`~scheduler.errors.StateStoreError` here, once (:func:`translated`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from scheduler.errors import FunctionNotFound, InvalidConfig, StateStoreError
from scheduler.state.keys import (
    CREATE_VERSION_LUA,
    DELETE_FUNCTION_LUA,
    FUNCTION_PAGE_LUA,
    FUNCTION_PREFIX,
    INVOCATION_PREFIX,
    PUT_INVOCATIONS_LUA,
    ROLLBACK_LUA,
    artifact_index_key,
    blob_key,
    changes_channel,
    function_key,
    functions_key,
    invocation_key,
    kv_key,
    kv_usage_key,
    node_key,
    nodes_key,
    recent_key,
    secrets_key,
    versions_key,
)

T = TypeVar("T")


class FunctionPage(NamedTuple):
    """Functions as (name, hash, versions), and where the next page starts (None: none)."""

    rows: list[tuple[str, dict[str, str], list[int]]]
    next_after: str | None


# Invocation records are kept for a day, and a function's newest RECORDS_KEPT at most
# (about 4 MB of Redis per function); `logs` shows at most RECENT_INVOCATIONS of them.
INVOCATION_TTL_S = 24 * 3600
RECORDS_KEPT = 10_000
RECENT_INVOCATIONS = 200
# A node that has not heartbeated for this long is gone, unless it says otherwise
# (nodes beat every second and ask for three).
NODE_TTL_S = 3.0
# Waits between attempts while Redis is unreachable: soon at first, then every
# 2 s (resubscribing to changes, writing kept records).
OUTAGE_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0)


def outage_backoff_s(failures: int) -> float:
    return OUTAGE_BACKOFF_S[min(failures, len(OUTAGE_BACKOFF_S) - 1)]


async def until_reachable(
    attempt: Callable[[], Awaitable[T]], what: str, logger: logging.Logger
) -> T:
    """``attempt()`` again and again while the state store is away (StateStoreError):
    one warning naming ``what``, waits of :func:`outage_backoff_s`, a note once it is
    back. Cancelling the caller is the only other way out."""
    failures = 0
    while True:
        try:
            result = await attempt()
        except StateStoreError as err:
            if failures == 0:
                logger.warning("%s (%s); trying again", what, err)
            await asyncio.sleep(outage_backoff_s(failures))
            failures += 1
            continue
        if failures:
            logger.warning("state store back after %d attempts: %s", failures + 1, what)
        return result


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """The single seam where redis-py errors become StateStoreError."""
    try:
        yield
    except RedisError as err:
        raise StateStoreError(f"redis {what} failed: {err}") from err


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StateStore:
    """Typed operations on the shared state; values in and out are bytes, str and JSON dicts.

    The client must be created with ``decode_responses=False`` (blobs are bytes).
    """

    def __init__(self, client: aioredis.Redis, *, records_kept: int = RECORDS_KEPT) -> None:
        self._r = client
        self.records_kept = records_kept
        self._create_version = client.register_script(CREATE_VERSION_LUA)
        self._rollback = client.register_script(ROLLBACK_LUA)
        self._delete = client.register_script(DELETE_FUNCTION_LUA)
        self._put_invocations = client.register_script(PUT_INVOCATIONS_LUA)
        self._function_page = client.register_script(FUNCTION_PAGE_LUA)

    # blobs

    async def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its sha256 (once: an existing blob is not rewritten)."""
        sha = sha256_hex(data)
        with translated("put blob"):
            await self._r.set(blob_key(sha), data, nx=True)
        return sha

    async def get_blob(self, sha256: str) -> bytes | None:
        with translated("get blob"):
            data = await self._r.get(blob_key(sha256))
        if data is None:
            return None
        return data if isinstance(data, bytes) else data.encode()

    async def blob_size(self, sha256: str) -> int:
        """A blob's size in bytes; 0 when there is none (no blob is stored empty)."""
        with translated("blob size"):
            return int(await self._r.strlen(blob_key(sha256)))

    async def get_artifact_sha(self, compat_tag: str, module_sha256: str) -> str | None:
        with translated("get artifact index"):
            sha = await self._r.get(artifact_index_key(compat_tag, module_sha256))
        return None if sha is None else _str(sha)

    async def set_artifact_sha(
        self, compat_tag: str, module_sha256: str, artifact_sha256: str
    ) -> None:
        with translated("set artifact index"):
            await self._r.set(artifact_index_key(compat_tag, module_sha256), artifact_sha256)

    # functions and versions

    async def create_version(
        self, name: str, record: dict[str, Any], now: float, secrets: dict[str, str] | None = None
    ) -> int:
        """Store ``record`` as the next version of ``name`` and make it current; its
        ``secrets`` go to their own hash."""
        keys = [function_key(name), versions_key(name), functions_key(), secrets_key(name)]
        args = [name, json.dumps(record), repr(now), json.dumps(secrets) if secrets else ""]
        with translated("create version"):
            version = await self._create_version(keys=keys, args=args)
        await self._changed(name)
        return int(version)

    async def _changed(self, name: str) -> None:
        """Tell the nodes' caches (best effort: a node also re-reads on reconnect)."""
        with translated("publish change"):
            await self._r.publish(changes_channel(), name)

    async def changes(self) -> AsyncIterator[str]:
        """Names of functions as their current version changes, until the connection ends
        (then StateStoreError; subscribe again and treat everything as changed).

        ``""`` comes whenever the subscription is (again) in place: first, and
        after redis-py reconnected by itself (Redis restarted: a change may have
        been missed, or lost with the last second of its append-only file).
        """
        with translated("subscribe to changes"):
            async with self._r.pubsub() as pubsub:
                await pubsub.subscribe(changes_channel())
                while True:
                    message = await pubsub.get_message(timeout=None)
                    kind = None if message is None else message.get("type")
                    if kind == "subscribe":
                        yield ""
                    elif kind == "message" and message is not None:
                        yield _str(message["data"])

    async def rollback(self, name: str, to: int | None, now: float) -> int:
        """Make version ``to`` (None: the one before the current) current; returns it."""
        keys = [function_key(name), versions_key(name)]
        with translated("rollback"):
            status, version = await self._rollback(
                keys=keys, args=["" if to is None else str(to), repr(now)]
            )
        status, version = int(status), int(version)
        if status == 0:
            await self._changed(name)
        if status == 1:
            raise FunctionNotFound(name)
        if status == 2:
            raise FunctionNotFound(name, version)
        if status == 3:
            raise InvalidConfig(
                "to", f"function {name!r} has no version before its current one ({version})"
            )
        return version

    async def delete_function(self, name: str) -> bool:
        """Drop the function, its versions and its recent list; True if it existed.

        Blobs stay: they are content-addressed and may be shared with other
        functions or versions (there is no garbage collection of blobs yet).
        Invocation records expire on their own.
        """
        keys = [
            function_key(name),
            versions_key(name),
            recent_key(name),
            secrets_key(name),
            kv_key(name),
            kv_usage_key(name),
            functions_key(),
        ]
        with translated("delete function"):
            existed = await self._delete(keys=keys, args=[name])
        await self._changed(name)
        return bool(existed)

    async def get_function(self, name: str) -> tuple[dict[str, str], list[int]] | None:
        """The function hash and its version numbers (ascending), or None when unknown."""
        with translated("get function"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hgetall(function_key(name))
                pipe.hkeys(versions_key(name))
                fields, versions = await pipe.execute()
        if not fields or b"current" not in fields:
            return None
        meta = {_str(k): _str(v) for k, v in fields.items()}
        return meta, sorted(int(v) for v in versions)

    async def get_secrets(self, name: str, version: int) -> dict[str, str]:
        """A version's secrets ({} when it has none)."""
        with translated("get secrets"):
            raw = await self._r.hget(secrets_key(name), str(version))
        if raw is None:
            return {}
        data = json.loads(raw)
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def get_version(self, name: str, version: int) -> dict[str, Any] | None:
        with translated("get version"):
            raw = await self._r.hget(versions_key(name), str(version))
        return None if raw is None else dict(json.loads(raw))

    async def get_versions(self, name: str, versions: list[int]) -> list[dict[str, Any] | None]:
        """Several versions of one function in one round trip, in the order asked."""
        if not versions:
            return []
        with translated("get versions"):
            raws = await self._r.hmget(versions_key(name), [str(v) for v in versions])
        return [None if raw is None else dict(json.loads(raw)) for raw in raws]

    async def function_page(self, after: str, limit: int) -> FunctionPage:
        """Up to ``limit`` functions named after ``after`` ("" from the first), by name,
        each as (name, hash, version numbers ascending), and the next page's ``after``
        (None at the end); one round trip whatever the number of functions."""
        with translated("list functions"):
            more, last, rows = await self._function_page(
                keys=[functions_key()], args=[after, limit, FUNCTION_PREFIX]
            )
        page = []
        for name, fields, versions in rows:
            meta = {_str(k): _str(v) for k, v in zip(fields[::2], fields[1::2], strict=True)}
            if "current" in meta:
                page.append((_str(name), meta, sorted(int(v) for v in versions)))
        return FunctionPage(page, _str(last) if more else None)

    # invocations

    async def put_invocation(
        self, invocation_id: str, function: str, record: dict[str, Any]
    ) -> None:
        """Store a record (expiring) and push its id on the function's capped recent list."""
        await self.put_invocations([(invocation_id, function, record)])

    async def put_invocations(self, records: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store a batch of (id, function, record) in one round trip, oldest first."""
        if not records:
            return
        keys = [invocation_key(invocation_id) for invocation_id, _, _ in records]
        keys += [recent_key(function) for _, function, _ in records]
        args: list[str | int] = [INVOCATION_TTL_S, self.records_kept, INVOCATION_PREFIX]
        args += [json.dumps(record) for _, _, record in records]
        args += [invocation_id for invocation_id, _, _ in records]
        with translated("record invocations"):
            await self._put_invocations(keys=keys, args=args)

    async def get_invocation(self, invocation_id: str) -> dict[str, Any] | None:
        with translated("get invocation"):
            raw = await self._r.get(invocation_key(invocation_id))
        return None if raw is None else dict(json.loads(raw))

    async def recent_invocations(self, function: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records, newest first; ids whose record expired are skipped."""
        if limit <= 0:
            return []
        with translated("list invocations"):
            ids = await self._r.lrange(recent_key(function), 0, limit - 1)
            if not ids:
                return []
            raws = await self._r.mget([invocation_key(_str(i)) for i in ids])
        return [dict(json.loads(raw)) for raw in raws if raw is not None]

    # nodes

    async def put_node(self, node_id: str, info: dict[str, Any], ttl_s: float = NODE_TTL_S) -> None:
        """Register or refresh a node; it disappears ``ttl_s`` after its last heartbeat."""
        with translated("register node"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.set(node_key(node_id), json.dumps(info), px=max(1, int(ttl_s * 1000)))
                pipe.sadd(nodes_key(), node_id)
                await pipe.execute()

    async def remove_node(self, node_id: str) -> None:
        """A stopping node leaves at once rather than when its record expires."""
        with translated("remove node"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.delete(node_key(node_id))
                pipe.srem(nodes_key(), node_id)
                await pipe.execute()

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """Live nodes by id; ids whose heartbeat key expired are pruned from the set."""
        with translated("list nodes"):
            ids = sorted(_str(i) for i in await self._r.smembers(nodes_key()))
            if not ids:
                return {}
            raws = await self._r.mget([node_key(i) for i in ids])
            gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:
                await self._r.srem(nodes_key(), *gone)
        return {
            i: dict(json.loads(raw)) for i, raw in zip(ids, raws, strict=True) if raw is not None
        }

    async def flush(self) -> None:
        """Empty the current database (tests only)."""
        with translated("flush"):
            await self._r.flushdb()
