"""Invocation records: written in batches, kept while the state store is away, bounded."""

from __future__ import annotations

import asyncio

from scheduler.errors import StateStoreError
from scheduler.model import InvocationRecord, StartKind
from scheduler.registry.records import GATHER_S, RecordWriter
from tests.virtual_time import virtual_time


def rec(i: int) -> InvocationRecord:
    return InvocationRecord(f"id{i}", "f", 1, StartKind.WARM, "ok", 0, 200, 1.0, 0.5, "", 0.0)


class FlakyRegistry:
    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[str]] = []

    async def record_invocations(self, recs: list[InvocationRecord]) -> None:
        await asyncio.sleep(0.001)
        if self.down:
            raise StateStoreError("redis record invocations failed: Connection refused")
        self.batches.append([r.id for r in recs])


@virtual_time
async def test_records_wait_out_an_outage_in_order() -> None:
    registry = FlakyRegistry()
    writer = RecordWriter(registry, buffer_max=100)  # type: ignore[arg-type]
    registry.down = True
    for i in range(5):
        writer.add(rec(i))
    await asyncio.sleep(3)
    assert registry.batches == [] and writer.pending == 5
    registry.down = False
    await writer.flush(10)
    assert [i for batch in registry.batches for i in batch] == [f"id{i}" for i in range(5)]
    assert (writer.pending, writer.written, writer.dropped) == (0, 5, 0)
    await writer.close()


@virtual_time
async def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    registry = FlakyRegistry()
    registry.down = True
    writer = RecordWriter(registry, buffer_max=3)  # type: ignore[arg-type]
    for i in range(5):
        writer.add(rec(i))
    assert (writer.pending, writer.dropped) == (3, 2)
    registry.down = False
    await writer.flush(10)
    assert [i for batch in registry.batches for i in batch] == ["id2", "id3", "id4"]
    await writer.close()


@virtual_time
async def test_records_of_calls_close_together_share_one_round_trip() -> None:
    registry = FlakyRegistry()
    writer = RecordWriter(registry)  # type: ignore[arg-type]
    for i in range(6):  # one call every 5 ms, as a busy function answers
        writer.add(rec(i))
        await asyncio.sleep(0.005)
    await writer.flush(10)
    assert registry.batches == [[f"id{i}" for i in range(6)]]
    writer.add(rec(6))  # a lone call is written within the gathering time
    await asyncio.sleep(GATHER_S * 2)
    assert registry.batches[-1] == ["id6"]
    await writer.close()
