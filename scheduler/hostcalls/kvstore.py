"""A function's key-value store in Redis: one hash per function, shared by all its versions.

Limits are checked here, before Redis is asked (key and value sizes), and by the
scripts in :mod:`scheduler.state.keys` (the quota, atomically with the write). Answers
are hostcall answers; a Redis failure is StateStoreError, which the call's session
answers as UNAVAILABLE.
"""

from __future__ import annotations

import dataclasses

import redis.asyncio as aioredis

from scheduler.state import keys
from scheduler.state.store import translated
from wasm_runtime.hostcalls import (
    KEY_MAX_BYTES,
    VALUE_MAX_BYTES,
    HostAnswer,
    Status,
    denied,
)


@dataclasses.dataclass(frozen=True)
class Quota:
    max_keys: int
    max_bytes: int


def check_key(key: bytes, *, prefix: bool = False) -> HostAnswer | None:
    """The refusal for an unusable key (a prefix may be empty), or None."""
    if len(key) > KEY_MAX_BYTES:
        return denied(Status.KEY_TOO_LARGE, f"a key of {len(key)} bytes (at most {KEY_MAX_BYTES})")
    if (not key and not prefix) or b"\0" in key:
        return denied(Status.INVALID_ARGUMENT, "a key is 1 or more bytes, none of them NUL")
    return None


class KVStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client
        self._set = client.register_script(keys.KV_SET_LUA)
        self._delete = client.register_script(keys.KV_DELETE_LUA)
        self._incr = client.register_script(keys.KV_INCR_LUA)

    @staticmethod
    def _keys(function: str) -> list[str]:
        return [keys.kv_key(function), keys.kv_usage_key(function)]

    async def get(self, function: str, key: bytes) -> HostAnswer:
        refused = check_key(key)
        if refused is not None:
            return refused
        with translated("kv get"):
            value = await self._r.hget(keys.kv_key(function), key)
        if value is None:
            return HostAnswer(Status.NOT_FOUND)
        return HostAnswer(Status.OK, value=_bytes(value))

    async def set(self, function: str, key: bytes, value: bytes, quota: Quota) -> HostAnswer:
        refused = check_key(key)
        if refused is not None:
            return refused
        if len(value) > VALUE_MAX_BYTES:
            return denied(
                Status.VALUE_TOO_LARGE,
                f"a value of {len(value)} bytes (at most {VALUE_MAX_BYTES})",
            )
        args: list[bytes | int] = [key, value, quota.max_keys, quota.max_bytes]
        with translated("kv set"):
            status = Status(int(await self._set(keys=self._keys(function), args=args)))
        return _quota_answer(status, quota)

    async def delete(self, function: str, key: bytes) -> HostAnswer:
        refused = check_key(key)
        if refused is not None:
            return refused
        with translated("kv delete"):
            deleted = int(await self._delete(keys=self._keys(function), args=[key]))
        return HostAnswer(Status.OK if deleted else Status.NOT_FOUND)

    async def incr(self, function: str, key: bytes, delta: int, quota: Quota) -> HostAnswer:
        refused = check_key(key)
        if refused is not None:
            return refused
        args: list[bytes | int] = [key, delta, quota.max_keys, quota.max_bytes]
        with translated("kv incr"):
            code, number = await self._incr(keys=self._keys(function), args=args)
        status = Status(int(code))
        if status is Status.NOT_A_NUMBER:
            return denied(status, "the value is not a decimal integer (or the sum overflows)")
        if status is not Status.OK:
            return _quota_answer(status, quota)
        return HostAnswer(Status.OK, number=int(number))

    async def list(self, function: str, prefix: bytes) -> HostAnswer:
        """Keys starting with ``prefix``, sorted (the key quota bounds how many)."""
        refused = check_key(prefix, prefix=True)
        if refused is not None:
            return refused
        with translated("kv list"):
            found = await self._r.hkeys(keys.kv_key(function))
        listed = sorted(k for k in map(_bytes, found) if k.startswith(prefix))
        return HostAnswer(Status.OK, keys=tuple(listed))


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _quota_answer(status: Status, quota: Quota) -> HostAnswer:
    if status is Status.QUOTA_KEYS:
        return denied(status, f"the store holds its quota of {quota.max_keys} keys")
    if status is Status.QUOTA_BYTES:
        return denied(status, f"the store would pass its quota of {quota.max_bytes} bytes")
    return HostAnswer(status)
