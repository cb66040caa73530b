"""The body of a gateway's call to a node's internal invoke API: one msgpack map.

The request is passed whole (method, path, query, headers, body, the caller's
address and whether it showed the token), so the node answers exactly as
``unifaas up`` would have answered the caller. The node's reply is the public
HTTP response itself. Anything unreadable is :class:`BadNodeRequest`, never a crash
(a fuzz test guards it).
"""

from __future__ import annotations

from typing import Any

import msgpack

from scheduler.errors import BadNodeRequest
from scheduler.model import InvokeRequest

CONTENT_TYPE = "application/vnd.unifaas.invoke+msgpack"
WIRE_VERSION = 1


def encode_invoke(req: InvokeRequest) -> bytes:
    packed: bytes = msgpack.packb(
        {
            "v": WIRE_VERSION,
            "method": req.method,
            "path_info": req.path_info,
            "query_string": req.query_string,
            "headers": [list(h) for h in req.headers],
            "body": req.body,
            "remote_addr": req.remote_addr,
            "server_name": req.server_name,
            "server_port": req.server_port,
            "authorized": req.authorized,
        },
        use_bin_type=True,
    )
    return packed


def decode_invoke(data: bytes) -> InvokeRequest:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise BadNodeRequest(f"not a msgpack invoke request: {err}") from None
    if not isinstance(raw, dict):
        raise BadNodeRequest("an invoke request is a map")
    if raw.get("v") != WIRE_VERSION:
        raise BadNodeRequest(f"invoke request version {raw.get('v')!r}, not {WIRE_VERSION}")
    return InvokeRequest(
        method=_field(raw, "method", str),
        path_info=_field(raw, "path_info", str),
        query_string=_field(raw, "query_string", str),
        headers=_headers(raw.get("headers")),
        body=_field(raw, "body", bytes),
        remote_addr=_field(raw, "remote_addr", str),
        server_name=_field(raw, "server_name", str),
        server_port=_port(raw.get("server_port")),
        authorized=_field(raw, "authorized", bool),
    )


def _field(raw: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = raw.get(name)
    if type(value) is not kind:
        raise BadNodeRequest(f"invoke request field {name!r} is not {kind.__name__}")
    return value


def _headers(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise BadNodeRequest("invoke request field 'headers' is not a list")
    headers: list[tuple[str, str]] = []
    for item in value:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise BadNodeRequest("an invoke request header is not [name, value]")
        headers.append((item[0], item[1]))
    return headers


def _port(value: object) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise BadNodeRequest("invoke request field 'server_port' is not a port")
    return value
