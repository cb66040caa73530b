"""``wasi:clocks``: the monotonic clock (with pollables that wait) and the wall clock."""

from __future__ import annotations

import time
from typing import Any

from wasmtime.component import Record, ResourceHost

from wasm_runtime.component.call import Call
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.io import Pollable
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import record

NS = 1_000_000_000


def _now(call: Call, store: Any) -> int:
    return time.monotonic_ns()


def _resolution(call: Call, store: Any) -> int:
    return 1


def _at_instant(call: Call, store: Any, when_ns: int) -> ResourceHost:
    return call.table.own(Kind.POLLABLE, Pollable(when_ns / NS))


def _after(call: Call, store: Any, duration_ns: int) -> ResourceHost:
    return call.table.own(Kind.POLLABLE, Pollable(time.monotonic() + duration_ns / NS))


def datetime_record(ns: int) -> Record:
    """A ``wasi:clocks/wall-clock.datetime`` of ``ns`` nanoseconds since the epoch."""
    seconds, nanoseconds = divmod(ns, NS)
    return record(seconds=seconds, nanoseconds=nanoseconds)


def datetime_ns(record: Any) -> int:
    return int(record.seconds) * NS + int(record.nanoseconds)


def _wall_now(call: Call, store: Any) -> Record:
    return datetime_record(time.time_ns())


def _wall_resolution(call: Call, store: Any) -> Record:
    return datetime_record(1)


INTERFACES = (
    Interface(
        "wasi:clocks/monotonic-clock",
        {},
        {
            "now": _now,
            "resolution": _resolution,
            "subscribe-instant": _at_instant,
            "subscribe-duration": _after,
        },
    ),
    Interface("wasi:clocks/wall-clock", {}, {"now": _wall_now, "resolution": _wall_resolution}),
)
