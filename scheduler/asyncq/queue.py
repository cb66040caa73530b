"""The async invocation queue in Redis: a stream read by the nodes' consumer group, a hash per
call, a sorted set of retries waiting their turn and a dead-letter stream.

A call's life (the status its hash holds)::

    queued --START--> running --FINISH--> succeeded | failed
      ^                  |
      +---- RETRY -------+ (a platform failure: after a backoff, back on the queue)
                         +--RETRY/START--> dead (attempts used up, or older than
                                                 the maximum event age)
    dead --REQUEUE--> queued                    (``unifaas dead-letters --retry``)

Each transition is one Lua script (:mod:`scheduler.state.keys`), so two nodes never
both move a call: a node that took an entry a dead node held (XAUTOCLAIM, past
the visibility timeout) runs it again, and of two endings only the first is kept.
Typed results out; every redis-py error becomes StateStoreError (``translated``).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from scheduler.errors import InvocationNotFound, NotDead, StateStoreError
from scheduler.state import keys
from scheduler.state.store import translated

# An answer's headers and body, as the sync call would have sent them.
Header = tuple[str, str]
# How long INFO's count of replicas is trusted before it is asked again.
REPLICAS_TTL_S = 5.0
# An accepted call waits this long (ms) for a replica to hold it, when there is one.
REPLICA_WAIT_MS = 1000
DEAD_LETTERS_MAX = 10_000


class AsyncStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the function answered (whatever HTTP status it chose)
    FAILED = "failed"  # the function failed (timeout, trap, out of memory, bad output...)
    DEAD = "dead"  # the platform could not run it: attempts used up, or too old

    @property
    def ended(self) -> bool:
        return self in (AsyncStatus.SUCCEEDED, AsyncStatus.FAILED, AsyncStatus.DEAD)


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[Header]
    body: bytes

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(
            {"status": self.status, "headers": [list(h) for h in self.headers], "body": self.body},
            use_bin_type=True,
        )
        return packed

    @classmethod
    def decode(cls, data: bytes) -> StoredResponse:
        raw = msgpack.unpackb(data, raw=False)
        return cls(raw["status"], [(k, v) for k, v in raw["headers"]], raw["body"])


@dataclasses.dataclass(frozen=True)
class AsyncCall:
    """One async call as its hash holds it."""

    id: str
    function: str
    status: AsyncStatus
    attempts: int
    created_at: float
    updated_at: float
    public: bool
    started_at: float | None = None
    finished_at: float | None = None
    node: str | None = None
    error: str | None = None
    http_status: int | None = None
    callback_url: str | None = None
    callback: str | None = None  # how delivering the callback went
    response: StoredResponse | None = None
    request: bytes | None = None  # until it ends well (kept for a dead-letter's retry)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A queue entry a node took: the stream's id for it and the call's."""

    entry_id: str
    call_id: str


@dataclasses.dataclass(frozen=True)
class Started:
    request: bytes
    attempt: int  # 1 for the first
    function: str
    callback_url: str | None


@dataclasses.dataclass(frozen=True)
class Gone:
    """START found nothing to run: the entry was stale (None) or the call went dead."""

    dead_reason: str | None


@dataclasses.dataclass(frozen=True)
class QueueStats:
    queued: int  # on the queue, not yet taken
    running: int  # taken by a node, not yet ended
    delayed: int  # waiting for a retry
    dead: int  # dead-letters kept
    oldest_age_s: float  # of the oldest call on the queue (taken or not); 0 when empty


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the Lua scripts are told of the queue's settings."""

    max_attempts: int
    max_age_s: float
    result_ttl_s: float

    @property
    def queued_ttl_s(self) -> int:
        # A call kept while it may still run, then while its result is kept.
        return int(self.max_age_s + self.result_ttl_s)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(raw: Any) -> list[Entry]:  # redis-py types stream replies loosely
    """XREADGROUP/XAUTOCLAIM entries; deleted ones come back as None (Redis 6) and are skipped."""
    found = []
    for item in raw or []:
        if not item or item[1] is None:
            continue
        entry_id, fields = item
        call_id = fields.get(b"id") or fields.get("id")
        if call_id is not None:
            found.append(Entry(_s(entry_id), _s(call_id)))
    return found


def _call(call_id: str, raw: Any) -> AsyncCall | None:
    f = {_s(k): v for k, v in raw.items()}
    if "status" not in f:
        return None

    def text(name: str) -> str | None:
        value = f.get(name)
        return _s(value) if value not in (None, b"", "") else None

    def number(name: str) -> float | None:
        value = text(name)
        return None if value is None else float(value)

    response = f.get("response")
    http_status = text("http_status")
    return AsyncCall(
        id=call_id,
        function=text("function") or "",
        status=AsyncStatus(_s(f["status"])),
        attempts=int(text("attempts") or 0),
        created_at=number("created_at") or 0.0,
        updated_at=number("updated_at") or 0.0,
        public=text("public") == "1",
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        node=text("node"),
        error=text("error"),
        http_status=int(http_status) if http_status else None,
        callback_url=text("callback_url"),
        callback=text("callback"),
        response=StoredResponse.decode(response) if response else None,
        request=f.get("request") or None,
    )


class AsyncQueue:
    def __init__(self, client: aioredis.Redis, limits: Limits) -> None:
        self._r = client
        self.limits = limits
        self._enqueue = client.register_script(keys.ENQUEUE_LUA)
        self._start = client.register_script(keys.START_LUA)
        self._finish = client.register_script(keys.FINISH_LUA)
        self._retry = client.register_script(keys.RETRY_LUA)
        self._promote = client.register_script(keys.PROMOTE_LUA)
        self._requeue = client.register_script(keys.REQUEUE_LUA)
        self._replicas = 0
        self._replicas_at = -REPLICAS_TTL_S

    async def ensure_group(self) -> None:
        """The consumer group (and the stream), made once; Redis may have lost it since."""
        with translated("create the queue's consumer group"):
            try:
                await self._r.xgroup_create(
                    keys.async_queue_key(), keys.ASYNC_GROUP, id="0", mkstream=True
                )
            except ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise

    # -- accepting --------------------------------------------------------------------
    async def enqueue(
        self,
        call_id: str,
        function: str,
        request: bytes,
        *,
        callback_url: str | None,
        public: bool,
    ) -> None:
        """Queue a call. Where Redis has replicas, it returns once one holds the call too,
        so a failover right after the 202 loses nothing (up to REPLICA_WAIT_MS)."""
        args: list[bytes | str | int] = [call_id, function, request, repr(time.time())]
        args += [callback_url or "", "1" if public else "0", self.limits.queued_ttl_s]
        with translated("queue a call"):
            await self._enqueue(
                keys=[keys.async_call_key(call_id), keys.async_queue_key()], args=args
            )
            if await self._replica_count():
                await self._r.wait(1, REPLICA_WAIT_MS)

    async def _replica_count(self) -> int:
        now = time.monotonic()
        if now - self._replicas_at > REPLICAS_TTL_S:
            info = await self._r.info("replication")
            self._replicas = int(info.get("connected_slaves", 0))
            self._replicas_at = now
        return self._replicas

    # -- taking -----------------------------------------------------------------------
    async def read(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """New entries for this node (waits up to ``block_ms`` for some)."""
        with translated("read the queue"):
            try:
                raw: Any = await self._r.xreadgroup(
                    keys.ASYNC_GROUP,
                    consumer,
                    {keys.async_queue_key(): ">"},
                    count=count,
                    block=block_ms,
                )
            except ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise
                await self.ensure_group()  # Redis lost it (restarted empty)
                return []
        return [e for _, entries in raw or [] for e in _entries(entries)]

    async def claim_abandoned(self, consumer: str, min_idle_s: float, count: int) -> list[Entry]:
        """Entries another node took and has not touched for ``min_idle_s`` (it died)."""
        with translated("claim abandoned calls"):
            reply = await self._r.xautoclaim(
                keys.async_queue_key(),
                keys.ASYNC_GROUP,
                consumer,
                min_idle_time=int(min_idle_s * 1000),
                start_id="0-0",
                count=count,
            )
        return _entries(reply[1])

    async def touch(self, consumer: str, entries: list[str]) -> None:
        """This node still runs these: their idle time starts over, so nobody claims them."""
        if not entries:
            return
        with translated("renew claims"):
            await self._r.xclaim(
                keys.async_queue_key(),
                keys.ASYNC_GROUP,
                consumer,
                min_idle_time=0,
                message_ids=list[int | bytes | str | memoryview](entries),
                justid=True,
            )

    async def forget_idle_consumers(self, idle_s: float) -> int:
        """Consumers (nodes long gone) with nothing pending leave the group."""
        with translated("prune consumers"):
            consumers = await self._r.xinfo_consumers(keys.async_queue_key(), keys.ASYNC_GROUP)
            gone = [
                _s(c["name"])
                for c in consumers
                if int(c["pending"]) == 0 and int(c["idle"]) > idle_s * 1000
            ]
            for name in gone:
                await self._r.xgroup_delconsumer(keys.async_queue_key(), keys.ASYNC_GROUP, name)
        return len(gone)

    # -- transitions ------------------------------------------------------------------
    def _entry_call(self, entry: Entry, *rest: Any) -> dict[str, Any]:
        return {
            "keys": [
                keys.async_call_key(entry.call_id),
                keys.async_queue_key(),
                keys.async_dead_key(),
                keys.async_delayed_key(),
            ],
            "args": [
                keys.ASYNC_GROUP,
                entry.entry_id,
                entry.call_id,
                repr(time.time()),
                int(self.limits.result_ttl_s),
                DEAD_LETTERS_MAX,
                *rest,
            ],
        }

    async def start(self, entry: Entry, node: str) -> Started | Gone:
        limits = self.limits
        with translated("start a call"):
            reply = await self._start(
                **self._entry_call(entry, node, limits.max_attempts, repr(limits.max_age_s))
            )
        if int(reply[0]) == 1:
            return Started(bytes(reply[1]), int(reply[2]), _s(reply[3]), _s(reply[4]) or None)
        return Gone(_s(reply[1]) if int(reply[0]) == 2 else None)

    async def finish(
        self, entry: Entry, status: AsyncStatus, response: StoredResponse, error: str | None
    ) -> bool:
        """Keep the call's ending; False when it had already ended (nothing changed)."""
        rest = [status.value, response.status, response.encode(), error or ""]
        with translated("finish a call"):
            return bool(await self._finish(**self._entry_call(entry, *rest)))

    async def retry(
        self, entry: Entry, due: float, error: str, response: StoredResponse
    ) -> AsyncStatus | None:
        """QUEUED (a retry at ``due``), DEAD (no attempts left), None (it had ended)."""
        rest = [repr(due), error, self.limits.max_attempts, response.encode(), response.status]
        with translated("schedule a retry"):
            result = int(await self._retry(**self._entry_call(entry, *rest)))
        return {1: AsyncStatus.QUEUED, 2: AsyncStatus.DEAD}.get(result)

    async def promote_due(self, limit: int = 100) -> int:
        with translated("queue due retries"):
            moved = await self._promote(
                keys=[keys.async_delayed_key(), keys.async_queue_key()],
                args=[repr(time.time()), limit],
            )
        return int(moved)

    async def requeue(self, call_id: str) -> AsyncCall:
        """A dead-letter back on the queue, as the requeue left it (``queued``, no attempts).

        Raises InvocationNotFound (no such call) or NotDead (it is not a dead-letter).
        """
        with translated("requeue a dead-letter"):
            result = await self._requeue(
                keys=[keys.async_call_key(call_id), keys.async_queue_key(), keys.async_dead_key()],
                args=[call_id, repr(time.time()), self.limits.queued_ttl_s],
            )
        if result == 0:
            raise InvocationNotFound(call_id)
        if result == -1:
            raise NotDead(f"async call {call_id!r} is not dead: only dead-letters are retried")
        call = _call(call_id, dict(zip(result[::2], result[1::2], strict=True)))
        if call is None:  # the hash was just written whole: a bug of the script
            raise InvocationNotFound(call_id)
        return call

    async def set_callback(self, call_id: str, outcome: str) -> None:
        with translated("note a callback"):
            await self._r.hset(keys.async_call_key(call_id), "callback", outcome)

    # -- reading ----------------------------------------------------------------------
    async def get(self, call_id: str) -> AsyncCall | None:
        with translated("read an async call"):
            raw = await self._r.hgetall(keys.async_call_key(call_id))
        return _call(call_id, raw) if raw else None

    async def dead_letters(self, limit: int) -> list[AsyncCall]:
        """The newest dead-letters first (those whose call expired are skipped)."""
        with translated("list dead-letters"):
            entries: Any = await self._r.xrevrange(keys.async_dead_key(), count=limit)
            ids = [_s(fields[b"id"]) for _, fields in entries or []]
            calls = [await self._r.hgetall(keys.async_call_key(i)) for i in ids]
        found = [_call(i, raw) for i, raw in zip(ids, calls, strict=True) if raw]
        return [c for c in found if c is not None and c.status is AsyncStatus.DEAD]

    async def stats(self) -> QueueStats:
        with translated("measure the queue"):
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.xlen(keys.async_queue_key())
                pipe.xpending(keys.async_queue_key(), keys.ASYNC_GROUP)
                pipe.zcard(keys.async_delayed_key())
                pipe.xlen(keys.async_dead_key())
                pipe.xrange(keys.async_queue_key(), count=1)
                length, pending, delayed, dead, first = await pipe.execute(raise_on_error=False)
        for reply in (length, delayed, dead):
            if isinstance(reply, Exception):
                raise StateStoreError(f"redis measure the queue failed: {reply}")
        running = 0 if isinstance(pending, Exception) else int(pending["pending"])
        oldest = 0.0
        if first and not isinstance(first, Exception):
            millis = int(_s(first[0][0]).split("-")[0])
            oldest = max(0.0, time.time() - millis / 1000)
        return QueueStats(
            queued=max(0, int(length) - running),
            running=running,
            delayed=int(delayed),
            dead=int(dead),
            oldest_age_s=oldest,
        )
