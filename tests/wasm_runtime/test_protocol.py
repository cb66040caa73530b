"""Framing round trips and a fuzz test that only ProtocolError escapes the decoder."""

from __future__ import annotations

import contextlib
import struct

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wasm_runtime import protocol
from wasm_runtime.errors import ErrorCode, ProtocolError, UnknownOp
from wasm_runtime.hostcalls import HostAnswer, HostRequest, Kind, Status
from wasm_runtime.protocol import FrameDecoder, Op
from wasm_runtime.types import Invocation


def decode_all(data: bytes, chunk: int = 0) -> tuple[list[dict[str, object]], list[ProtocolError]]:
    dec = FrameDecoder(max_frame=1 << 16)
    messages: list[dict[str, object]] = []
    errors: list[ProtocolError] = []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        dec.feed(piece)
        while True:
            try:
                msg = dec.next_message()
            except ProtocolError as err:
                errors.append(err)
                continue
            if msg is None:
                break
            messages.append(msg)
    return messages, errors


def test_round_trip_request_and_replies() -> None:
    msgs = [
        protocol.request(1, Op.INVOKE, {"stdin": b"\x00\xff", "args": ["a"]}),
        protocol.ok_reply(1, {"stdout": b"hi"}),
        protocol.error_reply(2, ErrorCode.NOT_LOADED, "nope", {"fn_id": "x"}),
        protocol.event(protocol.Event.HELLO, {"protocol": 1}),
    ]
    data = b"".join(protocol.encode_frame(m) for m in msgs)
    for chunk in (0, 1, 7):
        decoded, errors = decode_all(data, chunk)
        assert decoded == msgs
        assert errors == []


def test_parse_request() -> None:
    req_id, op, args = protocol.parse_request(protocol.request(5, Op.PING, {"echo": 1}))
    assert (req_id, op, args) == (5, Op.PING, {"echo": 1})
    with pytest.raises(UnknownOp) as info:
        protocol.parse_request({"id": 3, "op": "format-disk"})
    assert info.value.req_id == 3
    for bad in (
        {"op": "ping"},
        {"id": -1, "op": "ping"},
        {"id": True, "op": "ping"},
        {"id": 1, "op": "ping", "args": [1]},
    ):
        with pytest.raises(ProtocolError):
            protocol.parse_request(bad)


def test_garbage_then_frame_resynchronises() -> None:
    good = protocol.encode_frame(protocol.request(9, Op.PING))
    decoded, errors = decode_all(b"hello garbage" + good)
    assert decoded == [protocol.request(9, Op.PING)]
    assert len(errors) == 1
    assert errors[0].raw == b"hello garbage"


def test_oversized_length_is_an_error_not_a_wait() -> None:
    bad = protocol.HEADER.pack(protocol.MAGIC, protocol.PROTOCOL_VERSION, 0, 1 << 30)
    good = protocol.encode_frame(protocol.request(1, Op.STATS))
    decoded, errors = decode_all(bad + good)
    assert decoded == [protocol.request(1, Op.STATS)]
    assert "exceeds" in str(errors[0])


def test_wrong_version_and_bad_body() -> None:
    body = msgpack.packb([1, 2])
    v = protocol.PROTOCOL_VERSION
    not_a_map = protocol.HEADER.pack(protocol.MAGIC, v, 0, len(body)) + body
    other_version = protocol.HEADER.pack(protocol.MAGIC, v + 5, 0, 0)
    junk_body = protocol.HEADER.pack(protocol.MAGIC, v, 0, 2) + b"\xc1\xc1"
    decoded, errors = decode_all(not_a_map + other_version + junk_body)
    assert decoded == []
    assert len(errors) == 3
    assert errors[2].raw == b"\xc1\xc1"


def test_encoder_refuses_oversized_and_unencodable() -> None:
    with pytest.raises(ProtocolError):
        protocol.encode_frame({"blob": b"x" * 100}, max_frame=50)
    with pytest.raises(ProtocolError):
        protocol.encode_frame({"obj": object()})


def test_partial_header_waits() -> None:
    dec = FrameDecoder()
    frame = protocol.encode_frame(protocol.request(1, Op.PING))
    dec.feed(frame[:1])
    assert dec.next_message() is None
    dec.feed(frame[1:5])
    assert dec.next_message() is None
    dec.feed(frame[5:])
    assert dec.next_message() == protocol.request(1, Op.PING)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                lambda n: protocol.MAGIC + bytes([1, 0]) + struct.pack(">I", n),
                st.integers(0, 1 << 32 - 1),
            ),
            st.just(protocol.encode_frame(protocol.request(1, Op.PING))),
        ),
        max_size=12,
    ),
    st.integers(0, 9),
)
def test_fuzz_only_protocol_errors_escape(parts: list[bytes], chunk: int) -> None:
    data = b"".join(parts)
    decoded, _ = decode_all(data, chunk)
    assert all(isinstance(m, dict) for m in decoded)


_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_ANY)
def test_fuzz_round_trip_any_payload(payload: object) -> None:
    msg = {"id": 1, "op": "ping", "args": {"p": payload}}
    decoded, errors = decode_all(protocol.encode_frame(msg, max_frame=1 << 16))
    assert errors == []
    assert decoded == [msg]


_FIELDS = st.sampled_from(
    [
        "kind",
        "key",
        "value",
        "delta",
        "method",
        "url",
        "headers",
        "body",
        "status",
        "keys",
        "number",
        "http_status",
        "message",
        "hostcall",
        "call",
        "request",
        "answer",
    ]
)


def test_hostcall_messages_round_trip() -> None:
    request = HostRequest(Kind.HTTP, method="GET", url="http://x/", headers=(("A", "b"),))
    msg = protocol.hostcall(7, 3, request.to_wire())
    [decoded], _ = decode_all(protocol.encode_frame(msg))
    assert protocol.hostcall_ids(decoded) == (7, 3)
    assert HostRequest.from_wire(decoded["request"]) == request
    answer = HostAnswer(Status.OK, value=b"v", keys=(b"a", b"b"), number=-4, http_status=200)
    [decoded], _ = decode_all(protocol.encode_frame(protocol.hostcall_answer(7, answer.to_wire())))
    assert protocol.hostcall_ids(decoded) == (7, None)
    assert HostAnswer.from_wire(decoded["answer"]) == answer
    assert protocol.hostcall_ids({"id": 1}) is None
    with pytest.raises(ProtocolError):
        protocol.hostcall_ids({"hostcall": "x"})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_FIELDS, _ANY, max_size=6))
# bytes(n) of a number allocates n bytes: this one took 22 GB, and the test run with it.
@example({"keys": [10**12]})
@example({"status": 0, "keys": [b"k", 7]})
def test_fuzz_hostcall_bodies_never_raise_past_the_seam(data: dict[str, object]) -> None:
    """Whatever a guest (or a broken host) sends, the reader of a hostcall request gets a
    request or a TypeError/ValueError (answered INVALID_ARGUMENT), and the reader of an
    answer always gets an answer."""
    with contextlib.suppress(TypeError, ValueError):
        HostRequest.from_wire(data)
    assert isinstance(HostAnswer.from_wire(data), HostAnswer)
    with contextlib.suppress(ProtocolError):
        protocol.hostcall_ids(data)


def test_an_invocation_whose_stdin_is_a_number_is_refused_not_allocated() -> None:
    with pytest.raises(TypeError, match="expected bytes"):
        Invocation.from_wire({"stdin": 10**12})
