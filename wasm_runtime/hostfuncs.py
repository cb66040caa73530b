"""The guest's side of the hostcall ABI: the ``unifaas`` imports, as wasmtime host functions.

Each import reads its arguments out of the caller's memory, hands a
:class:`~wasm_runtime.hostcalls.HostRequest` to the call's :data:`Bridge` (the
agent forwards it to the host over the channel and blocks for the answer) and
writes the answer back. Nothing here decides policy: the host does.

The host functions are defined once per linker and find their call through a
thread-local :class:`CallContext`, because a call runs on one thread from start to
end. They never raise: wasmtime-py keeps a host function's exception in one
process-wide slot, which calls on other threads could pick up, so every failure
is a :class:`Status` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import struct
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from wasm_runtime.hostcalls import (
    I64,
    MODULE,
    RESULTS,
    SIGNATURES,
    HostAnswer,
    HostRequest,
    Kind,
    Status,
    header_lines,
    parse_header_lines,
)
from wasm_runtime.threadcall import ThreadCall

# Sends one request and waits at most ``timeout_s`` for its answer; TimeoutError when
# none came in time.
Bridge = Callable[[HostRequest, float], HostAnswer]

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
# Responses one call may hold at once (each up to the host's response cap).
MAX_RESPONSES = 16


@dataclasses.dataclass
class CallContext:
    """One call's hostcall state: how to reach the host, its deadline, its responses."""

    bridge: Bridge | None
    deadline: float  # time.monotonic() when the call's timeout ends
    responses: dict[int, HostAnswer] = dataclasses.field(default_factory=dict)
    next_handle: int = 1
    timed_out: bool = False  # a hostcall was still waiting when the call's time ran out
    made: int = 0
    memory: wasmtime.Memory | None = None  # the calling instance's, found at its first hostcall

    def ask(self, request: HostRequest) -> HostAnswer:
        self.made += 1
        if self.bridge is None:
            return HostAnswer(Status.UNAVAILABLE, message="no host to ask in this runtime")
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            return HostAnswer(Status.UNAVAILABLE, message="the call's time is up")
        try:
            return self.bridge(request, left)
        except TimeoutError:
            # The epoch deadline has passed too: the function traps at its next check.
            self.timed_out = True
            return HostAnswer(Status.UNAVAILABLE, message="the call's time ran out in a hostcall")


_current: ThreadCall[CallContext] = ThreadCall()


def calling(context: CallContext) -> contextlib.AbstractContextManager[CallContext]:
    """Make ``context`` the one the hostcalls of this thread's call use."""
    return _current.running(context)


class _Bad(Exception):
    """An argument the function passed is unusable (caught in this module only)."""


class _Memory:
    """The caller's linear memory for one hostcall, read and written through its base
    address: wasm does not run (so memory cannot grow or move) until the hostcall returns.
    wasmtime-py's Memory.read/write make two FFI calls and a temporary copy per access, a
    cost that counts per hostcall in a TCG guest."""

    __slots__ = ("base", "size")

    def __init__(self, caller: wasmtime.Caller, ctx: CallContext) -> None:
        memory = ctx.memory
        if memory is None:  # one lookup per call: a call's instance keeps its memory
            found = caller.get("memory")
            if not isinstance(found, wasmtime.Memory):
                raise _Bad("no exported memory")
            memory = ctx.memory = found
        self.base = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0
        self.size = memory.data_len(caller)

    def _check(self, ptr: int, length: int) -> None:
        if ptr < 0 or length < 0 or ptr + length > self.size:
            raise _Bad(f"[{ptr}, {ptr + length}) is outside memory")

    def read(self, ptr: int, length: int) -> bytes:
        self._check(ptr, length)
        return ctypes.string_at(self.base + ptr, length) if length else b""

    def text(self, ptr: int, length: int) -> str:
        try:
            return self.read(ptr, length).decode()
        except UnicodeDecodeError as err:
            raise _Bad("not UTF-8") from err

    def write(self, ptr: int, data: bytes) -> None:
        self._check(ptr, len(data))
        if data:
            ctypes.memmove(self.base + ptr, data, len(data))

    def output(self, data: bytes, out_ptr: int, out_cap: int, out_len_ptr: int) -> int:
        """The ABI's output convention: the length always, the bytes when they fit."""
        self.write(out_len_ptr, _U32.pack(len(data)))
        if len(data) > out_cap:
            return Status.BUFFER_TOO_SMALL
        self.write(out_ptr, data)
        return Status.OK


def _context() -> CallContext | None:
    return _current.get()


def _kv_get(mem: _Memory, ctx: CallContext, *a: int) -> int:
    key_ptr, key_len, out_ptr, out_cap, out_len_ptr = a
    answer = ctx.ask(HostRequest(Kind.KV_GET, key=mem.read(key_ptr, key_len)))
    if answer.status is not Status.OK:
        return answer.status
    return mem.output(answer.value, out_ptr, out_cap, out_len_ptr)


def _kv_set(mem: _Memory, ctx: CallContext, *a: int) -> int:
    key_ptr, key_len, value_ptr, value_len = a
    key, value = mem.read(key_ptr, key_len), mem.read(value_ptr, value_len)
    return ctx.ask(HostRequest(Kind.KV_SET, key=key, value=value)).status


def _kv_delete(mem: _Memory, ctx: CallContext, *a: int) -> int:
    key_ptr, key_len = a
    return ctx.ask(HostRequest(Kind.KV_DELETE, key=mem.read(key_ptr, key_len))).status


def _kv_list(mem: _Memory, ctx: CallContext, *a: int) -> int:
    prefix_ptr, prefix_len, out_ptr, out_cap, out_len_ptr = a
    answer = ctx.ask(HostRequest(Kind.KV_LIST, key=mem.read(prefix_ptr, prefix_len)))
    if answer.status is not Status.OK:
        return answer.status
    return mem.output(b"".join(k + b"\0" for k in answer.keys), out_ptr, out_cap, out_len_ptr)


def _kv_incr(mem: _Memory, ctx: CallContext, *a: int) -> int:
    key_ptr, key_len, delta, result_ptr = a
    mem.write(result_ptr, _I64.pack(0))  # checked before the effect, not after it
    answer = ctx.ask(HostRequest(Kind.KV_INCR, key=mem.read(key_ptr, key_len), delta=delta))
    if answer.status is Status.OK:
        mem.write(result_ptr, _I64.pack(answer.number))
    return answer.status


def _http_request(mem: _Memory, ctx: CallContext, *a: int) -> int:
    m_ptr, m_len, u_ptr, u_len, h_ptr, h_len, b_ptr, b_len, handle_ptr = a
    mem.write(handle_ptr, _U32.pack(0))
    if len(ctx.responses) >= MAX_RESPONSES:
        return Status.LIMIT
    try:
        headers = parse_header_lines(mem.read(h_ptr, h_len))
    except ValueError as err:
        raise _Bad(str(err)) from err
    request = HostRequest(
        Kind.HTTP,
        method=mem.text(m_ptr, m_len),
        url=mem.text(u_ptr, u_len),
        headers=headers,
        body=mem.read(b_ptr, b_len),
    )
    answer = ctx.ask(request)
    if answer.status is not Status.OK:
        return answer.status
    handle = ctx.next_handle
    ctx.next_handle += 1
    ctx.responses[handle] = answer
    mem.write(handle_ptr, _U32.pack(handle))
    return Status.OK


def _response(ctx: CallContext, handle: int) -> HostAnswer | None:
    return ctx.responses.get(handle)


def _http_status(mem: _Memory, ctx: CallContext, *a: int) -> int:
    handle, status_ptr = a
    response = _response(ctx, handle)
    if response is None:
        return Status.BAD_HANDLE
    mem.write(status_ptr, _U32.pack(response.http_status))
    return Status.OK


def _http_headers(mem: _Memory, ctx: CallContext, *a: int) -> int:
    handle, out_ptr, out_cap, out_len_ptr = a
    response = _response(ctx, handle)
    if response is None:
        return Status.BAD_HANDLE
    return mem.output(header_lines(response.headers), out_ptr, out_cap, out_len_ptr)


def _http_body(mem: _Memory, ctx: CallContext, *a: int) -> int:
    handle, out_ptr, out_cap, out_len_ptr = a
    response = _response(ctx, handle)
    if response is None:
        return Status.BAD_HANDLE
    return mem.output(response.value, out_ptr, out_cap, out_len_ptr)


_Impl = Callable[..., int]
IMPLEMENTATIONS: dict[str, _Impl] = {
    "kv_get": _kv_get,
    "kv_set": _kv_set,
    "kv_delete": _kv_delete,
    "kv_list": _kv_list,
    "kv_incr": _kv_incr,
    "http_request": _http_request,
    "http_status": _http_status,
    "http_headers": _http_headers,
    "http_body": _http_body,
}
assert set(IMPLEMENTATIONS) == set(SIGNATURES), "every import in the ABI table has a body"


def _valtype(name: str) -> wasmtime.ValType:
    return wasmtime.ValType.i64() if name == I64 else wasmtime.ValType.i32()


def func_type(name: str) -> wasmtime.FuncType:
    return wasmtime.FuncType(
        [_valtype(p) for p in SIGNATURES[name]], [_valtype(r) for r in RESULTS]
    )


def _host_function(impl: _Impl) -> Callable[..., int]:
    def call(caller: wasmtime.Caller, *args: Any) -> int:
        ctx = _context()
        if ctx is None:
            return int(Status.UNAVAILABLE)
        try:
            return int(impl(_Memory(caller, ctx), ctx, *args))
        except _Bad:
            return int(Status.INVALID_ARGUMENT)
        except Exception:  # never let an exception reach wasmtime-py (see the docstring)
            return int(Status.UNAVAILABLE)

    return call


def define(linker: wasmtime.Linker) -> None:
    """Define every ``unifaas`` import on ``linker`` (instances of any store may use them)."""
    for name, impl in IMPLEMENTATIONS.items():
        linker.define_func(MODULE, name, func_type(name), _host_function(impl), access_caller=True)
