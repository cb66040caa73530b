"""Wire protocol between the shim (host) and the agent (guest): framing, messages, ops.

Both sides import this module; nothing else knows the byte layout.

Frame layout (all integers big-endian)::

    +------+---------+----------+---------------+------------------+
    | "UF" | version | reserved | length (u32)  | msgpack body ... |
    +------+---------+----------+---------------+------------------+
      2 B     1 B        1 B         4 B            length bytes

The magic lets a reader resynchronise after garbage: a bad frame is reported
as one :class:`~wasm_runtime.errors.ProtocolError` (keeping the raw bytes) and
decoding continues at the next magic. The decoder never raises anything else.

Messages are msgpack maps:

* request  ``{"id": int, "op": str, "args": map}`` (host -> agent)
* reply    ``{"id": int | None, "ok": true, "result": map}`` or
  ``{"id": int | None, "ok": false, "error": {"code", "message", "detail"}}``;
  ``id`` is None when the request could not be read (bad frame).
* event    ``{"event": str, "data": map}`` (agent -> host, unsolicited);
  the agent sends ``hello`` once, when it is ready. A second ``hello`` means
  the guest restarted and the host must treat the VM as gone.

Requests carry ids so several may be in flight; replies may come in any order.

Hostcalls go the other way, while an invoke is in flight:

* hostcall ``{"hostcall": int, "call": int, "request": map}`` (agent -> host):
  ``hostcall`` is the agent's own id for it, ``call`` the id of the invoke request
  it belongs to (the host applies that call's policy);
* answer   ``{"hostcall": int, "answer": map}`` (host -> agent), for every hostcall.

The maps are :class:`~wasm_runtime.hostcalls.HostRequest` and ``HostAnswer``.

A load's blobs (its artifact, its files bundle) travel ahead of it as ``stage`` requests
``{"stage": int, "offset": int, "data": bin}`` of at most ``STAGE_CHUNK_BYTES`` each, in
order; the ``load`` then names each blob as ``{"stage": int, "size": int}``
(:mod:`wasm_runtime.staging`).
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import msgpack

from wasm_runtime.errors import ErrorCode, ProtocolError, UnknownOp

__all__ = [
    "HEADER",
    "MAGIC",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "STAGE_CHUNK_BYTES",
    "Event",
    "FrameDecoder",
    "Op",
    "encode_frame",
    "error_reply",
    "event",
    "hostcall",
    "hostcall_answer",
    "hostcall_ids",
    "ok_reply",
    "parse_request",
    "request",
]

MAGIC = b"UF"
PROTOCOL_VERSION = 2  # 2: loads name staged blobs
HEADER = struct.Struct(">2sBBI")
# Bounds a corrupt length; the largest frames are a stage's chunks and a call's body.
MAX_FRAME_BYTES = 128 * 1024 * 1024
# A load's artifact and files travel in chunks of this size: the agent holds one at a
# time, whatever the artifact's size.
STAGE_CHUNK_BYTES = 8 * 1024 * 1024


class Op(enum.StrEnum):
    PING = "ping"
    STAGE = "stage"
    LOAD = "load"
    INVOKE = "invoke"
    STATS = "stats"
    UNLOAD = "unload"
    SHUTDOWN = "shutdown"
    # First request to a VM restored from a snapshot: real time and fresh entropy.
    RESUME = "resume"


class Event(enum.StrEnum):
    HELLO = "hello"


def _pack(obj: dict[str, Any]) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def encode_frame(message: dict[str, Any], max_frame: int = MAX_FRAME_BYTES) -> bytes:
    """Frame one message. Refuses to produce a frame the peer would reject."""
    try:
        body = _pack(message)
    except (TypeError, ValueError, OverflowError) as err:
        raise ProtocolError(f"message cannot be encoded: {err}") from err
    if len(body) > max_frame:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {max_frame}-byte limit")
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, len(body)) + body


def request(req_id: int, op: Op, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": req_id, "op": op.value, "args": args or {}}


def ok_reply(req_id: int | None, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": req_id, "ok": True, "result": result or {}}


def error_reply(
    req_id: int | None,
    code: ErrorCode,
    message: str,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": req_id,
        "ok": False,
        "error": {"code": code.value, "message": message, "detail": detail or {}},
    }


def hostcall(hostcall_id: int, call_id: int, request_wire: dict[str, Any]) -> dict[str, Any]:
    return {"hostcall": hostcall_id, "call": call_id, "request": request_wire}


def hostcall_answer(hostcall_id: int, answer_wire: dict[str, Any]) -> dict[str, Any]:
    return {"hostcall": hostcall_id, "answer": answer_wire}


def hostcall_ids(msg: dict[str, Any]) -> tuple[int, int | None] | None:
    """(hostcall id, call id) of a hostcall or of its answer (call id None); None when
    ``msg`` is neither."""
    if "hostcall" not in msg:
        return None
    hc_id = protocol_int(msg.get("hostcall"))
    if hc_id is None:
        raise ProtocolError("hostcall without a valid id")
    return hc_id, protocol_int(msg.get("call"))


def protocol_int(value: object) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return value


def event(name: Event, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": name.value, "data": data or {}}


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, then call ``next_message`` until None.

    ``next_message`` raises ProtocolError for one bad frame or run of garbage,
    having already skipped past it, so the caller reports it and carries on.
    """

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> None:
        self._buf += data

    def _skip_to_next_magic(self, start: int) -> bytes:
        """Drop bytes up to the next possible frame start; return what was dropped."""
        idx = self._buf.find(MAGIC, start)
        if idx < 0:
            # A trailing first magic byte may be the start of the next frame.
            idx = len(self._buf) - 1 if self._buf.endswith(MAGIC[:1]) else len(self._buf)
            idx = max(idx, start)
        dropped = bytes(self._buf[:idx])
        del self._buf[:idx]
        return dropped

    def next_message(self) -> dict[str, Any] | None:
        buf = self._buf
        if not buf:
            return None
        if not buf.startswith(MAGIC[: len(buf)]):
            raise ProtocolError("garbage on the channel", self._skip_to_next_magic(1))
        if len(buf) < HEADER.size:
            return None
        _, version, _, length = HEADER.unpack_from(buf)
        if version != PROTOCOL_VERSION:
            raw = self._skip_to_next_magic(1)
            raise ProtocolError(f"unsupported protocol version {version}", raw)
        if length > self._max_frame:
            # Do not trust a length this large: it is likelier corruption than a
            # real frame, so resynchronise on the next magic instead of skipping it.
            raw = self._skip_to_next_magic(1)
            raise ProtocolError(f"frame of {length} bytes exceeds the limit", raw)
        end = HEADER.size + length
        if len(buf) < end:
            return None
        # Decoded in place: a stage's chunk (STAGE_CHUNK_BYTES) or a call's body is the
        # largest frame, and each copy of it costs a guest's memory.
        error: Exception | None = None
        raw = b""
        with memoryview(buf) as view, view[HEADER.size : end] as body:
            try:
                msg = msgpack.unpackb(body, raw=False, strict_map_key=True)
            except Exception as err:  # msgpack raises many unrelated types for bad input
                error, raw = err, bytes(body)
            else:
                if not isinstance(msg, dict):
                    raw = bytes(body)
        del buf[:end]
        if error is not None:
            raise ProtocolError(f"undecodable frame body: {error}", raw) from error
        if not isinstance(msg, dict):
            raise ProtocolError(f"frame body is a {type(msg).__name__}, not a map", raw)
        return msg


def request_id(msg: dict[str, Any]) -> int | None:
    """The request id of a message, or None when it has no usable one."""
    return protocol_int(msg.get("id"))


def parse_request(msg: dict[str, Any]) -> tuple[int, Op, dict[str, Any]]:
    """Check a decoded message is a well-formed request and split it."""
    req_id = request_id(msg)
    if req_id is None:
        raise ProtocolError("request without a valid id")
    try:
        op = Op(str(msg.get("op")))
    except ValueError as err:
        raise UnknownOp(req_id, msg.get("op")) from err
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("request args must be a map")
    return req_id, op, args
