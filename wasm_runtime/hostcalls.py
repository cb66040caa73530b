"""The hostcall ABI: what a function may ask of the host, shared by agent and shim.

A function imports these from the wasm module ``unifaas``. Every one returns an
``i32`` :class:`Status` (0 is success); pointers and lengths are ``i32`` offsets
into the function's exported ``memory``. Output goes to a buffer the function
provides (``out_ptr``, ``out_cap``); the length written, or on ``BUFFER_TOO_SMALL``
the length needed, goes to the ``u32`` at ``out_len_ptr``, so a function can
grow its buffer and ask again without the host doing anything twice.

The agent turns a hostcall into a :class:`HostRequest` frame to the shim and
waits for a :class:`HostAnswer`; the host decides, under the function's policy,
outside the guest. Nothing here does I/O: this is the table both sides agree on.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable
from typing import Any

from wasm_runtime.types import known_fields, wire_bytes

MODULE = "unifaas"


class Status(enum.IntEnum):
    """What a hostcall returns. The numbers are ABI: never renumber, only add."""

    OK = 0
    NOT_FOUND = 1  # no such key
    BUFFER_TOO_SMALL = 2  # the needed length is at out_len_ptr; ask again
    INVALID_ARGUMENT = 3  # a pointer outside memory, an empty or NUL-bearing key, a bad URL
    KEY_TOO_LARGE = 4  # a key over 256 bytes
    VALUE_TOO_LARGE = 5  # a value over 1 MiB
    QUOTA_KEYS = 6  # the function's store holds as many keys as its quota allows
    QUOTA_BYTES = 7  # the function's store would pass its byte quota
    HOST_DENIED = 8  # the URL's host is not on the function's allow-list
    HTTP_TIMEOUT = 9  # the outbound request outlived its timeout
    HTTP_TOO_LARGE = 10  # the request or the response is over its size cap
    HTTP_FAILED = 11  # the host could not resolve, connect or read
    LIMIT = 12  # the call has made as many hostcalls as a call may
    UNAVAILABLE = 13  # the platform could not serve it now (state store away, ...)
    BAD_HANDLE = 14  # no response with that handle in this call
    NOT_A_NUMBER = 15  # kv_incr on a value that is not a decimal integer


class Kind(enum.StrEnum):
    """What the agent asks the host for (one kind per effect the host carries out)."""

    KV_GET = "kv_get"
    KV_SET = "kv_set"
    KV_DELETE = "kv_delete"
    KV_LIST = "kv_list"
    KV_INCR = "kv_incr"
    HTTP = "http"

    @property
    def has_effect(self) -> bool:
        """Changes something outside the VM: a call that made it may not run again."""
        return self not in (Kind.KV_GET, Kind.KV_LIST)


I32, I64 = "i32", "i64"

# Import name -> its parameter types (every result is one i32 Status). Deploy checks
# a module's unifaas imports against this table: same name, exactly these types.
SIGNATURES: dict[str, tuple[str, ...]] = {
    # key_ptr, key_len, out_ptr, out_cap, out_len_ptr
    "kv_get": (I32, I32, I32, I32, I32),
    # key_ptr, key_len, value_ptr, value_len
    "kv_set": (I32, I32, I32, I32),
    # key_ptr, key_len
    "kv_delete": (I32, I32),
    # prefix_ptr, prefix_len, out_ptr, out_cap, out_len_ptr: keys, each ended by a NUL
    "kv_list": (I32, I32, I32, I32, I32),
    # key_ptr, key_len, delta, result_ptr (the new value, an i64)
    "kv_incr": (I32, I32, I64, I32),
    # method, url, headers ("Name: value\n" lines), body (ptr, len each), handle_out_ptr
    "http_request": (I32, I32, I32, I32, I32, I32, I32, I32, I32),
    # handle, status_out_ptr (a u32)
    "http_status": (I32, I32),
    # handle, out_ptr, out_cap, out_len_ptr: "Name: value\n" lines
    "http_headers": (I32, I32, I32, I32),
    # handle, out_ptr, out_cap, out_len_ptr
    "http_body": (I32, I32, I32, I32),
}
RESULTS: tuple[str, ...] = (I32,)

# The defaults the host enforces (its settings may lower or raise the quotas and caps).
KEY_MAX_BYTES = 256
VALUE_MAX_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class HostRequest:
    """One hostcall as it crosses the wall: its kind and its arguments (unused ones empty)."""

    kind: Kind
    key: bytes = b""  # kv: the key, or kv_list's prefix
    value: bytes = b""  # kv_set: the value
    delta: int = 0  # kv_incr
    method: str = ""  # http
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        for field in ("key", "value", "delta", "method", "url", "body"):
            value = getattr(self, field)
            if value:
                out[field] = value
        if self.headers:
            out["headers"] = [list(pair) for pair in self.headers]
        return out

    @classmethod
    def from_wire(cls, data: object) -> HostRequest:
        """Raises ValueError/TypeError for a malformed request (the host answers
        INVALID_ARGUMENT)."""
        if not isinstance(data, dict):
            raise TypeError("a hostcall request is a map")
        fields = known_fields(cls, data)
        fields["kind"] = Kind(str(fields.get("kind")))
        fields["headers"] = tuple((str(k), str(v)) for k, v in fields.get("headers", ()))
        request = cls(**fields)
        if not isinstance(request.key, bytes) or not isinstance(request.value, bytes):
            raise TypeError("key and value are bytes")
        if not isinstance(request.body, bytes) or not isinstance(request.delta, int):
            raise TypeError("body is bytes and delta an integer")
        return request


@dataclasses.dataclass(frozen=True)
class HostAnswer:
    """The host's answer to one hostcall: a status and what it returned."""

    status: Status
    value: bytes = b""  # kv_get, or the http body
    keys: tuple[bytes, ...] = ()  # kv_list
    number: int = 0  # kv_incr's new value
    http_status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    message: str = ""  # why it was refused, for the function's stderr and the host's log

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": int(self.status)}
        if self.value:
            out["value"] = self.value
        if self.keys:
            out["keys"] = list(self.keys)
        if self.number:
            out["number"] = self.number
        if self.http_status:
            out["http_status"] = self.http_status
        if self.headers:
            out["headers"] = [list(pair) for pair in self.headers]
        if self.message:
            out["message"] = self.message
        return out

    @classmethod
    def from_wire(cls, data: object) -> HostAnswer:
        if not isinstance(data, dict):
            return cls(Status.UNAVAILABLE, message="the host's answer is not a map")
        try:
            fields = known_fields(cls, data)
            fields["status"] = Status(int(fields.get("status", Status.UNAVAILABLE)))
            fields["keys"] = tuple(wire_bytes(k) for k in fields.get("keys", ()))
            fields["headers"] = tuple((str(k), str(v)) for k, v in fields.get("headers", ()))
            return cls(**fields)
        except (TypeError, ValueError) as err:
            return cls(Status.UNAVAILABLE, message=f"the host's answer is malformed: {err}")


# The host side of one call's hostcalls: carries out a request under the call's policy.
# It never raises; a refusal is an answer with its Status.
HostHandler = Callable[[HostRequest], Awaitable[HostAnswer]]


def denied(status: Status, message: str) -> HostAnswer:
    return HostAnswer(status, message=message)


def header_lines(headers: tuple[tuple[str, str], ...]) -> bytes:
    """Headers as the ABI passes them: ``Name: value\\n`` lines."""
    return b"".join(f"{k}: {v}\n".encode("latin-1", "replace") for k, v in headers)


def parse_header_lines(raw: bytes) -> tuple[tuple[str, str], ...]:
    """The inverse of :func:`header_lines`; a line without a colon is a ValueError."""
    out: list[tuple[str, str]] = []
    for line in raw.decode("latin-1").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header line {line[:40]!r} has no name")
        out.append((name.strip(), value.strip()))
    return tuple(out)
