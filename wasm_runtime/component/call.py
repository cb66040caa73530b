"""One component call's state: its request, its handles, its output, how it ended.

Host functions find the call through a thread-local (a call runs on one thread from
start to end), as the core-module hostcalls do. A host function that must stop the
call (a cap passed, an interface not granted, the deadline) records why here before it
traps, so the outcome is read from this record, never from a trap's message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import time
from pathlib import Path

from wasmtime import WasmtimeError

from wasm_runtime.component.handles import HandleTable
from wasm_runtime.hostcalls import HostAnswer, HostRequest, Status
from wasm_runtime.hostfuncs import CallContext
from wasm_runtime.threadcall import ThreadCall
from wasm_runtime.types import HttpRequest


class Stop(enum.StrEnum):
    """Why the host stopped a call (empty: it did not)."""

    NONE = ""
    EXIT = "exit"  # wasi:cli/exit
    DENIED = "denied"  # an interface the platform does not grant
    TIMEOUT = "timeout"  # the deadline passed while the host waited for the call
    OVERFLOW = "overflow"  # an output cap: body, stdout, stderr or headers
    MISUSE = "misuse"  # a handle or a call the WASI contract does not allow
    MEMORY = "memory"  # its memory cap was too small for it to start


class Sink:
    """Bytes a call writes (its response body, stdout or stderr), up to a cap."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.data = bytearray()

    def write(self, call: Call, data: bytes) -> None:
        if len(self.data) + len(data) > self.cap:
            call.stop(Stop.OVERFLOW, f"{self.name} exceeded its limit of {self.cap} bytes")
        self.data += data


@dataclasses.dataclass
class Response:
    """What the component set through its response-outparam."""

    status: int = 200
    headers: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)
    error: str = ""  # the error-code case it set instead of a response


@dataclasses.dataclass
class Call:
    """The state of one call of a component."""

    request: HttpRequest
    name: str  # argv[0]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    deadline: float  # time.monotonic() when its timeout ends
    body: Sink
    stdout: Sink
    stderr: Sink
    headers_max_bytes: int
    # How its hostcalls reach the host (outbound HTTP, key-value), with its deadline.
    host: CallContext | None = None
    # Its fresh copy of the function's files bundle, preopened at "/" (None: no bundle).
    files_root: Path | None = None
    table: HandleTable = dataclasses.field(default_factory=HandleTable)
    response: Response | None = None
    stopped: Stop = Stop.NONE
    reason: str = ""
    exit_code: int | None = None

    def stop(self, why: Stop, reason: str) -> None:
        """End the call now: record why, then trap (the only way out of a host function)."""
        if self.stopped is Stop.NONE:
            self.stopped, self.reason = why, reason
        raise WasmtimeError(reason)

    def misuse(self, reason: str) -> None:
        self.stop(Stop.MISUSE, reason)

    def ask(self, request: HostRequest) -> HostAnswer:
        """Carry ``request`` out on the host; the answer says what it refused. A call whose
        time ran out while the host worked for it stops as timed out."""
        if self.host is None:
            return HostAnswer(Status.UNAVAILABLE, message="no host to ask in this runtime")
        answer = self.host.ask(request)
        if self.host.timed_out:
            self.stop(Stop.TIMEOUT, "the call's time ran out while the host worked for it")
        return answer

    def left_s(self) -> float:
        return self.deadline - time.monotonic()


_current: ThreadCall[Call] = ThreadCall()


def calling(call: Call) -> contextlib.AbstractContextManager[Call]:
    """Make ``call`` the one the host functions of this thread's component use."""
    return _current.running(call)


def current_call() -> Call | None:
    """The call this thread runs, if any."""
    return _current.get()


def current() -> Call:
    call = _current.get()
    if call is None:
        raise WasmtimeError("a WASI host function was called outside of a call")
    return call
