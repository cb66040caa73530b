"""``wasi:http/types``: the incoming request, the fields, and the response the component sets.

The request is the one under the function's mount (``/fn/NAME/x?y`` arrives as
``/x?y``). Its headers are an immutable copy; its body one input stream. The response's
body is written to a sink capped by the call's output limit, and each fields resource is
capped by the header limit; passing a cap stops the call (``output_too_large``).
Outgoing requests are :mod:`.http_out`'s.
"""

from __future__ import annotations

import re
from typing import Any

from wasmtime.component import ResourceAny, ResourceHost, Variant

from wasm_runtime.component.call import Call, Response, Sink, Stop
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.io import InputStream, IoError, OutputStream, ready
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Case, Err, Ok, Some

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
# Hop-by-hop fields: the platform's HTTP server owns them.
FORBIDDEN = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)
METHODS = frozenset(
    {"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"}
)
STATUS_MIN, STATUS_MAX = 100, 599

INVALID = Case("invalid-syntax")
IMMUTABLE = Case("immutable")


class Fields:
    """Header or trailer fields; ``entries`` may be shared with the response they belong to
    (an immutable view of them), so only the mutable owner changes them."""

    def __init__(self, entries: list[tuple[str, bytes]] | None = None, *, immutable: bool = False):
        self.entries = entries if entries is not None else []
        self.immutable = immutable
        self._size = sum(len(k) + len(v) for k, v in self.entries)

    def size(self) -> int:
        return self._size

    def replace(self, entries: list[tuple[str, bytes]]) -> None:
        self.entries[:] = entries
        self._size = sum(len(k) + len(v) for k, v in entries)

    def append(self, name: str, value: bytes) -> None:
        self.entries.append((name, value))
        self._size += len(name) + len(value)


class IncomingBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.streamed = False


class FutureTrailers:
    def __init__(self) -> None:
        self.taken = False


class OutgoingResponse:
    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body_taken = False


class OutgoingBody:
    """The body of the response, or of an outgoing request: one stream into ``sink``."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.written = False
        self.finished = False


class ResponseOutparam:
    pass


class IncomingRequest:
    def __init__(self, call: Call) -> None:
        self.request = call.request
        self.consumed = False


def _check(call: Call, fields: Fields, name: str, values: list[bytes]) -> Case | None:
    if fields.immutable:
        return IMMUTABLE
    if not _TOKEN.match(name.encode("latin-1", "replace")):
        return INVALID
    if any(_BAD_VALUE.search(v) for v in values):
        return INVALID
    if name.lower() in FORBIDDEN:
        return Case("forbidden")
    grown = fields.size() + sum(len(name) + len(v) for v in values)
    if grown > call.headers_max_bytes:
        call.stop(Stop.OVERFLOW, f"headers exceeded their limit of {call.headers_max_bytes} bytes")
    return None


def _fields_new(call: Call, store: Any) -> ResourceHost:
    return call.table.own(Kind.FIELDS, Fields())


def _fields_from_list(call: Call, store: Any, entries: list[tuple[str, bytes]]) -> Ok | Err:
    fields = Fields()
    for name, value in entries:
        problem = _check(call, fields, name, [value])
        if problem is not None:
            return Err(problem)
        fields.append(name, value)
    return Ok(call.table.own(Kind.FIELDS, fields))


def _get(call: Call, store: Any, this: ResourceAny, name: str) -> list[bytes]:
    key = name.lower()
    return [v for k, v in call.table.get(store, this, Fields).entries if k.lower() == key]


def _has(call: Call, store: Any, this: ResourceAny, name: str) -> bool:
    return bool(_get(call, store, this, name))


def _set(call: Call, store: Any, this: ResourceAny, name: str, values: list[bytes]) -> Ok | Err:
    fields = call.table.get(store, this, Fields)
    key = name.lower()
    kept = [(k, v) for k, v in fields.entries if k.lower() != key]
    problem = _check(call, Fields(kept), name, values) if not fields.immutable else IMMUTABLE
    if problem is not None:
        return Err(problem)
    fields.replace([*kept, *((name, v) for v in values)])
    return Ok()


def _delete(call: Call, store: Any, this: ResourceAny, name: str) -> Ok | Err:
    fields = call.table.get(store, this, Fields)
    if fields.immutable:
        return Err(IMMUTABLE)
    key = name.lower()
    fields.replace([(k, v) for k, v in fields.entries if k.lower() != key])
    return Ok()


def _append(call: Call, store: Any, this: ResourceAny, name: str, value: bytes) -> Ok | Err:
    fields = call.table.get(store, this, Fields)
    problem = _check(call, fields, name, [value])
    if problem is not None:
        return Err(problem)
    fields.append(name, value)
    return Ok()


def _entries(call: Call, store: Any, this: ResourceAny) -> list[tuple[str, bytes]]:
    return list(call.table.get(store, this, Fields).entries)


def _clone(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    return call.table.own(Kind.FIELDS, Fields(list(call.table.get(store, this, Fields).entries)))


def _method(call: Call, store: Any, this: ResourceAny) -> Case:
    method = call.table.get(store, this, IncomingRequest).request.method
    return Case(method.lower()) if method.lower() in METHODS else Case("other", method)


def _path(call: Call, store: Any, this: ResourceAny) -> str:
    return call.table.get(store, this, IncomingRequest).request.path_with_query


def _scheme(call: Call, store: Any, this: ResourceAny) -> Case:
    scheme = call.table.get(store, this, IncomingRequest).request.scheme
    return Case(scheme.upper()) if scheme.lower() in ("http", "https") else Case("other", scheme)


def _authority(call: Call, store: Any, this: ResourceAny) -> str | None:
    return call.table.get(store, this, IncomingRequest).request.authority or None


def _request_headers(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    request = call.table.get(store, this, IncomingRequest).request
    entries = [(k, v.encode("latin-1", "replace")) for k, v in request.headers]
    return call.table.own(Kind.FIELDS, Fields(entries, immutable=True))


def _consume(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    request = call.table.get(store, this, IncomingRequest)
    if request.consumed:
        return Err()
    request.consumed = True
    return Ok(call.table.own(Kind.INCOMING_BODY, IncomingBody(request.request.body)))


def _body_stream(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    body = call.table.get(store, this, IncomingBody)
    if body.streamed:
        return Err()
    body.streamed = True
    return Ok(call.table.own(Kind.INPUT_STREAM, InputStream(body.data)))


def _body_finish(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    call.table.take(store, this, IncomingBody)
    return call.table.own(Kind.FUTURE_TRAILERS, FutureTrailers())


def _trailers_subscribe(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    call.table.get(store, this, FutureTrailers)
    return call.table.own(Kind.POLLABLE, ready())


def _trailers_get(call: Call, store: Any, this: ResourceAny) -> Some:
    future = call.table.get(store, this, FutureTrailers)
    if future.taken:
        return Some(Err())
    future.taken = True
    return Some(Ok(Ok(None)))  # a request through the gateway has no trailers


def _response_new(call: Call, store: Any, headers: ResourceAny) -> ResourceHost:
    fields = call.table.take(store, headers, Fields)
    return call.table.own(Kind.OUTGOING_RESPONSE, OutgoingResponse(fields))


def _status(call: Call, store: Any, this: ResourceAny) -> int:
    return call.table.get(store, this, OutgoingResponse).status


def _set_status(call: Call, store: Any, this: ResourceAny, status: int) -> Ok | Err:
    response = call.table.get(store, this, OutgoingResponse)
    if not STATUS_MIN <= status <= STATUS_MAX:
        return Err()
    response.status = status
    return Ok()


def _response_headers(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    response = call.table.get(store, this, OutgoingResponse)
    return call.table.own(Kind.FIELDS, Fields(response.headers.entries, immutable=True))


def _response_body(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    response = call.table.get(store, this, OutgoingResponse)
    if response.body_taken:
        return Err()
    response.body_taken = True
    return Ok(call.table.own(Kind.OUTGOING_BODY, OutgoingBody(call.body)))


def _body_write(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    body = call.table.get(store, this, OutgoingBody)
    if body.written:
        return Err()
    body.written = True
    return Ok(call.table.own(Kind.OUTPUT_STREAM, OutputStream(body.sink)))


def _outgoing_finish(call: Call, store: Any, this: ResourceAny, trailers: Any) -> Ok:
    body = call.table.take(store, this, OutgoingBody)
    body.finished = True
    if isinstance(trailers, ResourceAny):
        call.table.take(store, trailers, Fields)  # HTTP/1.1 carries no trailers here
    return Ok()


def _outparam_set(call: Call, store: Any, param: ResourceAny, response: Any) -> None:
    call.table.take(store, param, ResponseOutparam)
    if isinstance(response, Variant) and response.tag in ("ok", "err"):
        response = response.payload if response.tag == "ok" else Err(response.payload)
    if call.response is not None:
        call.misuse("response-outparam.set was called twice")
    if isinstance(response, ResourceAny):
        sent = call.table.take(store, response, OutgoingResponse)
        call.response = Response(sent.status, list(sent.headers.entries))
        return
    code = response.value if isinstance(response, Err) else response
    call.response = Response(500, [], error=code.tag if isinstance(code, Variant) else "error")


def _http_error_code(call: Call, store: Any, err: ResourceAny) -> None:
    call.table.get(store, err, IoError)
    return None


def incoming(call: Call) -> tuple[ResourceHost, ResourceHost]:
    """The two arguments of ``handle``: the request and the outparam, as new handles."""
    return (
        call.table.own(Kind.INCOMING_REQUEST, IncomingRequest(call)),
        call.table.own(Kind.RESPONSE_OUTPARAM, ResponseOutparam()),
    )


INTERFACES = (
    Interface(
        "wasi:http/types",
        {
            "fields": Kind.FIELDS,
            "incoming-request": Kind.INCOMING_REQUEST,
            "response-outparam": Kind.RESPONSE_OUTPARAM,
            "incoming-body": Kind.INCOMING_BODY,
            "future-trailers": Kind.FUTURE_TRAILERS,
            "outgoing-response": Kind.OUTGOING_RESPONSE,
            "outgoing-body": Kind.OUTGOING_BODY,
        },
        {
            "http-error-code": _http_error_code,
            "[constructor]fields": _fields_new,
            "[static]fields.from-list": _fields_from_list,
            "[method]fields.get": _get,
            "[method]fields.has": _has,
            "[method]fields.set": _set,
            "[method]fields.delete": _delete,
            "[method]fields.append": _append,
            "[method]fields.entries": _entries,
            "[method]fields.clone": _clone,
            "[method]incoming-request.method": _method,
            "[method]incoming-request.path-with-query": _path,
            "[method]incoming-request.scheme": _scheme,
            "[method]incoming-request.authority": _authority,
            "[method]incoming-request.headers": _request_headers,
            "[method]incoming-request.consume": _consume,
            "[method]incoming-body.stream": _body_stream,
            "[static]incoming-body.finish": _body_finish,
            "[method]future-trailers.subscribe": _trailers_subscribe,
            "[method]future-trailers.get": _trailers_get,
            "[constructor]outgoing-response": _response_new,
            "[method]outgoing-response.status-code": _status,
            "[method]outgoing-response.set-status-code": _set_status,
            "[method]outgoing-response.headers": _response_headers,
            "[method]outgoing-response.body": _response_body,
            "[method]outgoing-body.write": _body_write,
            "[static]outgoing-body.finish": _outgoing_finish,
            "[static]response-outparam.set": _outparam_set,
        },
    ),
)
