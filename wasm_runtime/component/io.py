"""``wasi:io``: errors, pollables and the byte streams every other package hands out.

Streams are in memory (a request body read, a sink written), so they are always ready;
the only pollables that wait are the clocks'. ``poll`` and ``block`` wait at most until
the call's deadline, then stop the call as timed out: epoch interruption fires only while
wasm code runs, never while the host waits for it.
"""

from __future__ import annotations

import time
from typing import Any

from wasmtime.component import ResourceAny

from wasm_runtime.component.call import Call, Sink, Stop
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Err, Ok

# The most a component may read or write in one stream operation: lists of bytes cross
# wasmtime-py's value conversion a byte at a time, so chunks stay small.
CHUNK_BYTES = 64 * 1024
# How long one wait sleeps before looking at the deadline again.
WAIT_SLICE_S = 0.05


class IoError:
    def __init__(self, message: str, code: str | None = None) -> None:
        self.message = message
        self.code = code  # its wasi:filesystem error-code, when a file's stream failed


class Pollable:
    """Ready now, or at ``when`` (time.monotonic()); None never (until the deadline)."""

    def __init__(self, when: float | None = 0.0) -> None:
        self._when = when

    def due(self) -> float | None:
        """When it is (or was) ready, by the monotonic clock; None: not by any time."""
        return self._when

    def ready(self) -> bool:
        due = self.due()
        return due is not None and time.monotonic() >= due


def ready() -> Pollable:
    return Pollable(0.0)


def wait_for(call: Call, pollables: list[Pollable]) -> list[int]:
    """Block until one of ``pollables`` is ready: the indices of those that are."""
    while True:
        done = [i for i, p in enumerate(pollables) if p.ready()]
        if done:
            return done
        now = time.monotonic()
        if now >= call.deadline:
            call.stop(Stop.TIMEOUT, "the call's time ran out while it waited on a pollable")
        due = [when for p in pollables if (when := p.due()) is not None]
        until = min([call.deadline, *due])
        time.sleep(min(max(until - now, 0.0), WAIT_SLICE_S))


class InputStream:
    def __init__(self, data: bytes = b"") -> None:
        self.data = memoryview(data)
        self.at = 0

    def read(self, n: int) -> Ok | Err:
        if self.at >= len(self.data):
            return Err(None)  # closed: the stream is at its end
        n = min(n, CHUNK_BYTES)
        chunk = bytes(self.data[self.at : self.at + n])
        self.at += len(chunk)
        return Ok(chunk)

    def skip(self, n: int) -> Ok | Err:
        if self.at >= len(self.data):
            return Err(None)
        n = min(n, len(self.data) - self.at)
        self.at += n
        return Ok(n)


class OutputStream:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, call: Call, data: bytes) -> Ok | Err:
        if len(data) > CHUNK_BYTES:
            call.misuse(f"a write of {len(data)} bytes is more than check-write allowed")
        self.sink.write(call, data)
        return Ok()


def _pollable_ready(call: Call, store: Any, this: ResourceAny) -> bool:
    return call.table.get(store, this, Pollable).ready()


def _pollable_block(call: Call, store: Any, this: ResourceAny) -> None:
    wait_for(call, [call.table.get(store, this, Pollable)])


def _poll(call: Call, store: Any, pollables: list[ResourceAny]) -> list[int]:
    if not pollables:
        call.misuse("poll was given no pollables")
    return wait_for(call, [call.table.get(store, p, Pollable) for p in pollables])


def _debug_string(call: Call, store: Any, this: ResourceAny) -> str:
    return call.table.get(store, this, IoError).message


def _read(call: Call, store: Any, this: ResourceAny, n: int) -> Ok | Err:
    return call.table.get(store, this, InputStream).read(n)


def _skip(call: Call, store: Any, this: ResourceAny, n: int) -> Ok | Err:
    return call.table.get(store, this, InputStream).skip(n)


def _subscribe(kind: type) -> Any:
    def subscribe(call: Call, store: Any, this: ResourceAny) -> Any:
        call.table.get(store, this, kind)
        return call.table.own(Kind.POLLABLE, ready())

    return subscribe


def _check_write(call: Call, store: Any, this: ResourceAny) -> Ok:
    call.table.get(store, this, OutputStream)
    return Ok(CHUNK_BYTES)


def _write(call: Call, store: Any, this: ResourceAny, data: bytes) -> Ok | Err:
    return call.table.get(store, this, OutputStream).write(call, data)


def _flush(call: Call, store: Any, this: ResourceAny) -> Ok:
    call.table.get(store, this, OutputStream)
    return Ok()


def _write_zeroes(call: Call, store: Any, this: ResourceAny, n: int) -> Ok | Err:
    return call.table.get(store, this, OutputStream).write(call, bytes(min(n, CHUNK_BYTES + 1)))


def _splice(call: Call, store: Any, this: ResourceAny, src: ResourceAny, n: int) -> Ok | Err:
    out = call.table.get(store, this, OutputStream)
    read = call.table.get(store, src, InputStream).read(n)
    if isinstance(read, Err):
        return read
    wrote = out.write(call, read.value)
    return Ok(len(read.value)) if isinstance(wrote, Ok) else wrote


INTERFACES = (
    Interface(
        "wasi:io/error",
        {"error": Kind.ERROR},
        {"[method]error.to-debug-string": _debug_string},
    ),
    Interface(
        "wasi:io/poll",
        {"pollable": Kind.POLLABLE},
        {
            "[method]pollable.ready": _pollable_ready,
            "[method]pollable.block": _pollable_block,
            "poll": _poll,
        },
    ),
    Interface(
        "wasi:io/streams",
        {"input-stream": Kind.INPUT_STREAM, "output-stream": Kind.OUTPUT_STREAM},
        {
            "[method]input-stream.read": _read,
            "[method]input-stream.blocking-read": _read,
            "[method]input-stream.skip": _skip,
            "[method]input-stream.blocking-skip": _skip,
            "[method]input-stream.subscribe": _subscribe(InputStream),
            "[method]output-stream.check-write": _check_write,
            "[method]output-stream.write": _write,
            "[method]output-stream.blocking-write-and-flush": _write,
            "[method]output-stream.flush": _flush,
            "[method]output-stream.blocking-flush": _flush,
            "[method]output-stream.subscribe": _subscribe(OutputStream),
            "[method]output-stream.write-zeroes": _write_zeroes,
            "[method]output-stream.blocking-write-and-flush-zeroes": _write_zeroes,
            "[method]output-stream.blocking-write-zeroes-and-flush": _write_zeroes,
            "[method]output-stream.splice": _splice,
            "[method]output-stream.blocking-splice": _splice,
        },
    ),
)
