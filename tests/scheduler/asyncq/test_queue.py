"""The async queue against a real redis-server: each transition's Lua script, and a node's worker
driving them with a fake runner (the seam where a real node runs the call in a VM)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from scheduler.asyncq.queue import (
    AsyncQueue,
    AsyncStatus,
    Entry,
    Gone,
    Limits,
    Started,
    StoredResponse,
)
from scheduler.asyncq.worker import AsyncWorker, Ran
from scheduler.errors import InvocationNotFound, NotDead, SandboxLost
from scheduler.settings import AsyncSettings
from scheduler.state import keys
from wasm_runtime.errors import FunctionTrap
from wasm_runtime.types import InvocationResult, Outcome

LIMITS = Limits(max_attempts=3, max_age_s=3600, result_ttl_s=600)
OK = StoredResponse(200, [("content-type", "text/plain"), ("x-invocation-id", "i")], b"hi")
LOST = StoredResponse(503, [("content-type", "application/json")], b'{"error": {}}')


@pytest.fixture
async def queue(redis: aioredis.Redis) -> AsyncQueue:
    q = AsyncQueue(redis, LIMITS)
    await q.ensure_group()
    await q.ensure_group()  # made once: the second is a no-op
    return q


async def _queued(queue: AsyncQueue, call_id: str, function: str = "echo") -> None:
    await queue.enqueue(
        call_id, function, b"req-" + call_id.encode(), callback_url=None, public=True
    )


async def _take(queue: AsyncQueue, consumer: str = "node-a") -> Entry:
    (entry,) = await queue.read(consumer, 1, block_ms=100)
    return entry


async def test_a_call_runs_once_and_keeps_its_first_ending(queue: AsyncQueue) -> None:
    await _queued(queue, "c1")
    call = await queue.get("c1")
    assert call is not None and call.status is AsyncStatus.QUEUED and call.attempts == 0
    assert (await queue.stats()).queued == 1
    entry = await _take(queue)
    started = await queue.start(entry, "node-a")
    assert started == Started(b"req-c1", 1, "echo", None)
    stats = await queue.stats()
    assert (stats.queued, stats.running) == (0, 1)
    assert await queue.finish(entry, AsyncStatus.SUCCEEDED, OK, None)
    # A second ending (a node thought dead finishing late) changes nothing.
    other = StoredResponse(500, [], b"late")
    assert not await queue.finish(entry, AsyncStatus.FAILED, other, "late")
    call = await queue.get("c1")
    assert call is not None
    assert (call.status, call.attempts, call.node, call.http_status) == (
        AsyncStatus.SUCCEEDED,
        1,
        "node-a",
        200,
    )
    assert call.response == OK and call.request is None  # the request is dropped once it ended
    stats = await queue.stats()
    assert (stats.queued, stats.running, stats.oldest_age_s) == (0, 0, 0.0)


async def test_platform_failures_are_retried_then_the_call_goes_dead(
    queue: AsyncQueue, redis: aioredis.Redis
) -> None:
    await _queued(queue, "c2")
    for attempt in (1, 2, 3):
        entry = await _take(queue)
        started = await queue.start(entry, "node-a")
        assert isinstance(started, Started) and started.attempt == attempt
        after = await queue.retry(entry, due=0.0, error="VM lost", response=LOST)
        if attempt < 3:
            assert after is AsyncStatus.QUEUED
            assert (await queue.stats()).delayed == 1
            assert await queue.promote_due() == 1
            assert await queue.promote_due() == 0  # moved once
    assert after is AsyncStatus.DEAD
    call = await queue.get("c2")
    assert call is not None and call.status is AsyncStatus.DEAD
    assert call.error is not None and "gave up after 3 attempts: VM lost" in call.error
    assert call.response == LOST  # the last attempt's answer, as the sync call had it
    (dead,) = await queue.dead_letters(10)
    assert dead.id == "c2" and (await queue.stats()).dead == 1
    # Queued again: attempts start over, and it leaves the dead-letters.
    # The answer is the call as the requeue left it, read in the same script: a worker may
    # take it from the queue at once, and that must not change what the retry reports.
    requeued = await queue.requeue("c2")
    assert (requeued.id, requeued.function, requeued.status, requeued.attempts) == (
        "c2",
        call.function,
        AsyncStatus.QUEUED,
        0,
    )
    assert requeued.error is None and requeued.response is None
    with pytest.raises(NotDead):
        await queue.requeue("c2")  # not dead any more
    with pytest.raises(InvocationNotFound):
        await queue.requeue("nope")
    call = await queue.get("c2")
    assert call == requeued
    assert await queue.dead_letters(10) == [] and (await queue.stats()).dead == 0
    started = await queue.start(await _take(queue), "node-b")
    assert isinstance(started, Started) and started.request == b"req-c2"
    assert await redis.ttl(keys.async_call_key("c2")) > 0  # every call hash expires


async def test_a_silent_nodes_call_is_claimed_and_only_one_ending_counts(
    queue: AsyncQueue,
) -> None:
    await _queued(queue, "c3")
    entry = await _take(queue, "node-a")
    assert isinstance(await queue.start(entry, "node-a"), Started)
    assert await queue.claim_abandoned("node-b", min_idle_s=5, count=10) == []  # still fresh
    await asyncio.sleep(0.1)
    (claimed,) = await queue.claim_abandoned("node-b", min_idle_s=0.05, count=10)
    assert claimed == entry
    started = await queue.start(claimed, "node-b")
    assert isinstance(started, Started) and started.attempt == 2
    assert await queue.finish(claimed, AsyncStatus.SUCCEEDED, OK, None)
    assert not await queue.finish(entry, AsyncStatus.SUCCEEDED, OK, None)  # node-a, late
    call = await queue.get("c3")
    assert call is not None and call.node == "node-b"


async def test_renewing_a_claim_keeps_other_nodes_off(queue: AsyncQueue) -> None:
    await _queued(queue, "c4")
    entry = await _take(queue, "node-a")
    await queue.start(entry, "node-a")
    await asyncio.sleep(0.15)
    await queue.touch("node-a", [entry.entry_id])
    assert await queue.claim_abandoned("node-b", min_idle_s=0.1, count=10) == []


async def test_stale_and_expired_entries_are_dropped(redis: aioredis.Redis) -> None:
    queue = AsyncQueue(redis, Limits(max_attempts=3, max_age_s=0.05, result_ttl_s=60))
    await queue.ensure_group()
    await _queued(queue, "old")
    await asyncio.sleep(0.1)
    gone = await queue.start(await _take(queue), "node-a")
    assert isinstance(gone, Gone) and "maximum event age" in (gone.dead_reason or "")
    # An entry of a call that is running from another entry (a retried XADD): dropped.
    await _queued(queue, "dup")
    await redis.xadd(keys.async_queue_key(), {"id": "dup"})
    first, second = await queue.read("node-a", 2, block_ms=100)
    assert isinstance(await queue.start(first, "node-a"), Started)
    assert await queue.start(second, "node-a") == Gone(None)
    assert await queue.start(Entry("0-1", "never-queued"), "node-a") == Gone(None)


async def test_the_group_is_made_again_when_redis_lost_it(
    queue: AsyncQueue, redis: aioredis.Redis
) -> None:
    await redis.delete(keys.async_queue_key())
    assert await queue.read("node-a", 1, block_ms=10) == []
    await _queued(queue, "c5")
    assert (await _take(queue)).call_id == "c5"


# -- the worker ------------------------------------------------------------------------------


class FakeRunner:
    """Answers each call with its own request; ``lose`` calls fail for a platform reason
    their first time, ``trap`` calls fail as functions."""

    def __init__(self, lose: set[str] = frozenset(), trap: set[str] = frozenset()) -> None:
        self.lose, self.trap = lose, trap
        self.runs: collections.Counter[str] = collections.Counter()

    async def __call__(self, call_id: str, function: str, request: bytes) -> Ran:
        self.runs[call_id] += 1
        await asyncio.sleep(0.01)
        if call_id in self.lose and self.runs[call_id] == 1:
            return Ran(LOST, SandboxLost("the VM went away"))
        if call_id in self.trap:
            result = InvocationResult(outcome=Outcome.TRAP, exit_code=134)
            return Ran(StoredResponse(500, [], b"trap"), FunctionTrap(result))
        return Ran(StoredResponse(200, [], request))


SETTINGS = AsyncSettings(concurrency=4, retry_backoff_s=0.05, claim_idle_s=0.5)


@contextlib.asynccontextmanager
async def _worker(queue: AsyncQueue, run: FakeRunner, node: str) -> AsyncIterator[AsyncWorker]:
    async with AsyncWorker(queue, run, node, SETTINGS, drain_s=5) as worker:
        yield worker


async def _ended(queue: AsyncQueue, ids: list[str], timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            calls = [await queue.get(i) for i in ids]
            if all(c is not None and c.status.ended for c in calls):
                return
            await asyncio.sleep(0.05)


async def test_a_worker_runs_retries_and_fails_calls_as_their_outcomes_say(
    queue: AsyncQueue,
) -> None:
    ids = [f"w{i}" for i in range(20)]
    run = FakeRunner(lose={"w3", "w7"}, trap={"w5"})
    for call_id in ids:
        await _queued(queue, call_id)
    async with _worker(queue, run, "node-a") as worker:
        await _ended(queue, ids)
    calls = {i: await queue.get(i) for i in ids}
    for call_id, call in calls.items():
        assert call is not None
        if call_id == "w5":
            assert call.status is AsyncStatus.FAILED and call.attempts == 1  # not retried
            continue
        assert call.status is AsyncStatus.SUCCEEDED, call
        assert call.response is not None and call.response.body == b"req-" + call_id.encode()
        assert call.attempts == (2 if call_id in ("w3", "w7") else 1)
    assert worker.counts["retried"] == 2 and worker.counts["succeeded"] == 19
    assert worker.counts["failed"] == 1 and worker.counts["duplicate"] == 0
    assert max(run.runs.values()) == 2 and worker.running == 0


async def test_a_worker_takes_over_the_calls_of_a_node_that_died(queue: AsyncQueue) -> None:
    ids = [f"d{i}" for i in range(3)]
    for call_id in ids:
        await _queued(queue, call_id)
    # A node took them, started them and died.
    for entry in await queue.read("dead-node", 10, block_ms=100):
        await queue.start(entry, "dead-node")
    run = FakeRunner()
    async with _worker(queue, run, "node-b") as worker:
        await _ended(queue, ids)
    assert worker.counts["claimed"] == 3
    for call_id in ids:
        call = await queue.get(call_id)
        assert call is not None and call.status is AsyncStatus.SUCCEEDED
        assert (call.attempts, call.node) == (2, "node-b")
