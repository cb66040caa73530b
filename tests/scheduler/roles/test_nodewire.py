"""The gateway-to-node envelope: what goes in comes out, and nothing a stranger sends
is more than BadNodeRequest."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import BadNodeRequest
from scheduler.model import InvokeRequest
from scheduler.roles.nodewire import decode_invoke, encode_invoke

text = st.text(max_size=20)
requests = st.builds(
    InvokeRequest,
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path_info=text,
    query_string=text,
    headers=st.lists(st.tuples(text, text), max_size=4),
    body=st.binary(max_size=64),
    remote_addr=text,
    server_name=text,
    server_port=st.integers(0, 65535),
    authorized=st.booleans(),
)


@given(requests)
def test_a_request_comes_back_whole(req: InvokeRequest) -> None:
    assert decode_invoke(encode_invoke(req)) == req


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_bad_node_request(data: bytes) -> None:
    with contextlib.suppress(BadNodeRequest):
        decode_invoke(data)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=200)
@given(requests, st.sampled_from(
    ["v", "method", "path_info", "query_string", "headers", "body", "remote_addr",
     "server_name", "server_port", "authorized"]
), values)  # fmt: skip
def test_a_field_of_the_wrong_shape_is_bad_node_request(
    req: InvokeRequest, field: str, value: object
) -> None:
    raw = msgpack.unpackb(encode_invoke(req))
    raw[field] = value
    try:
        decoded = decode_invoke(msgpack.packb(raw, use_bin_type=True))
    except BadNodeRequest:
        return
    assert decoded.method == raw["method"]  # it was of the right shape after all


def test_another_version_is_refused() -> None:
    raw = msgpack.unpackb(encode_invoke(InvokeRequest("GET", "", "", [], b"")))
    raw["v"] = 2
    with pytest.raises(BadNodeRequest, match="version"):
        decode_invoke(msgpack.packb(raw))
