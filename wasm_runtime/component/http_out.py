"""``wasi:http/outgoing-handler`` and the outgoing side of ``wasi:http/types``: requests a
component sends, through the host.

The guest has no network: ``handle`` hands the request to the host as a hostcall (the same
one a module's ``http_request`` makes), which sends it only to hosts on the function's
allow-list, under its caps, counted in its metrics, and marks the call as having made an
effect (so a VM lost under it does not run it again). The request goes when its body is
finished (or it has none) and its response is asked for; the host's refusals become the
``error-code`` that says the same: a host not allowed is ``HTTP-request-denied``.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import ResourceAny, ResourceHost

from wasm_runtime.component.call import Call, Sink
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.http import METHODS, Fields, IncomingBody, OutgoingBody
from wasm_runtime.component.io import Pollable
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Case, Err, Ok, Some, case_of
from wasm_runtime.hostcalls import HostAnswer, HostRequest, Status
from wasm_runtime.hostcalls import Kind as HostKind

# The most an outgoing request's body may hold in the guest (the host caps it too).
REQUEST_BODY_MAX_BYTES = 8 * 1024 * 1024
# How a refusal of the host reads as a wasi:http error-code.
ERROR_CODES = {
    Status.HOST_DENIED: Case("HTTP-request-denied"),
    Status.HTTP_TIMEOUT: Case("connection-timeout"),
    Status.HTTP_TOO_LARGE: Case("HTTP-response-body-size", None),
    Status.HTTP_FAILED: Case("destination-unavailable"),
    Status.INVALID_ARGUMENT: Case("HTTP-request-URI-invalid"),
}


class OutgoingRequest:
    def __init__(self, headers: Fields) -> None:
        self.method = "GET"
        self.scheme: str | None = None
        self.authority: str | None = None
        self.path_with_query: str | None = None
        self.headers = headers
        self.body: OutgoingBody | None = None


class RequestOptions:
    def __init__(self) -> None:
        self.timeouts: dict[str, int | None] = {}


class IncomingResponse:
    def __init__(self, status: int, headers: Fields, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.consumed = False


class FutureIncomingResponse:
    """A request on its way: sent when its body is finished and its response asked for."""

    def __init__(self, request: OutgoingRequest) -> None:
        self.request = request
        self.answer: Ok | Err | None = None
        self.taken = False

    def sendable(self) -> bool:
        body = self.request.body
        return body is None or body.finished

    def resolve(self, call: Call) -> Ok | Err:
        if self.answer is None:
            self.answer = _send(call, self.request)
        return self.answer


def _send(call: Call, request: OutgoingRequest) -> Ok | Err:
    scheme = (request.scheme or "http").lower()
    if not request.authority:
        return Err(Case("HTTP-request-URI-invalid"))
    url = f"{scheme}://{request.authority}{request.path_with_query or '/'}"
    headers = tuple((k, v.decode("latin-1")) for k, v in request.headers.entries)
    body = bytes(request.body.sink.data) if request.body is not None else b""
    answer: HostAnswer = call.ask(
        HostRequest(HostKind.HTTP, method=request.method, url=url, headers=headers, body=body)
    )
    if answer.status is not Status.OK:
        code = ERROR_CODES.get(answer.status, Case("internal-error", answer.message or None))
        return Err(code)
    fields = Fields([(k, v.encode("latin-1")) for k, v in answer.headers], immutable=True)
    return Ok(IncomingResponse(answer.http_status, fields, answer.value))


def _method_name(method: Any) -> str | None:
    tag, payload = case_of(method)
    if tag == "other":
        return str(payload)
    return tag.upper() if tag in METHODS else None


def _request_new(call: Call, store: Any, headers: ResourceAny) -> ResourceHost:
    fields = call.table.take(store, headers, Fields)
    return call.table.own(Kind.OUTGOING_REQUEST, OutgoingRequest(fields))


def _request(call: Call, store: Any, this: ResourceAny) -> OutgoingRequest:
    return call.table.get(store, this, OutgoingRequest)


def _body(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    request = _request(call, store, this)
    if request.body is not None:
        return Err()
    request.body = OutgoingBody(Sink("an outgoing request's body", REQUEST_BODY_MAX_BYTES))
    return Ok(call.table.own(Kind.OUTGOING_BODY, request.body))


def _method(call: Call, store: Any, this: ResourceAny) -> Case:
    method = _request(call, store, this).method
    return Case(method.lower()) if method.lower() in METHODS else Case("other", method)


def _set_method(call: Call, store: Any, this: ResourceAny, method: Any) -> Ok | Err:
    request = _request(call, store, this)
    name = _method_name(method)
    if not name:
        return Err()
    request.method = name
    return Ok()


def _path(call: Call, store: Any, this: ResourceAny) -> str | None:
    return _request(call, store, this).path_with_query


def _set_path(call: Call, store: Any, this: ResourceAny, path: str | None) -> Ok:
    _request(call, store, this).path_with_query = path
    return Ok()


def _scheme(call: Call, store: Any, this: ResourceAny) -> Case | None:
    scheme = _request(call, store, this).scheme
    if scheme is None:
        return None
    return Case(scheme.upper()) if scheme.lower() in ("http", "https") else Case("other", scheme)


def _set_scheme(call: Call, store: Any, this: ResourceAny, scheme: Any) -> Ok:
    request = _request(call, store, this)
    if scheme is None:
        request.scheme = None
    else:
        tag, payload = case_of(scheme)
        request.scheme = str(payload) if tag == "other" else tag.lower()
    return Ok()


def _authority(call: Call, store: Any, this: ResourceAny) -> str | None:
    return _request(call, store, this).authority


def _set_authority(call: Call, store: Any, this: ResourceAny, authority: str | None) -> Ok:
    _request(call, store, this).authority = authority
    return Ok()


def _request_headers(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    request = _request(call, store, this)
    return call.table.own(Kind.FIELDS, Fields(request.headers.entries, immutable=True))


def _options_new(call: Call, store: Any) -> ResourceHost:
    return call.table.own(Kind.REQUEST_OPTIONS, RequestOptions())


def _timeout_get(name: str) -> Any:
    def get(call: Call, store: Any, this: ResourceAny) -> int | None:
        return call.table.get(store, this, RequestOptions).timeouts.get(name)

    return get


def _timeout_set(name: str) -> Any:
    # Kept, and not applied: the host's own timeouts bound every outbound request.
    def set_(call: Call, store: Any, this: ResourceAny, value: int | None) -> Ok:
        call.table.get(store, this, RequestOptions).timeouts[name] = value
        return Ok()

    return set_


def _handle(call: Call, store: Any, request: ResourceAny, options: Any) -> Ok:
    sent = call.table.take(store, request, OutgoingRequest)
    if isinstance(options, ResourceAny):
        call.table.take(store, options, RequestOptions)
    return Ok(call.table.own(Kind.FUTURE_INCOMING_RESPONSE, FutureIncomingResponse(sent)))


class _Sent(Pollable):
    """Ready when its request can go (the host then sends it on ``get``)."""

    def __init__(self, future: FutureIncomingResponse) -> None:
        super().__init__(None)
        self.future = future

    def due(self) -> float | None:
        return 0.0 if self.future.sendable() else None


def _future_subscribe(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    future = call.table.get(store, this, FutureIncomingResponse)
    return call.table.own(Kind.POLLABLE, _Sent(future))


def _future_get(call: Call, store: Any, this: ResourceAny) -> Some | None:
    future = call.table.get(store, this, FutureIncomingResponse)
    if not future.sendable():
        return None
    if future.taken:
        return Some(Err())
    future.taken = True
    answer = future.resolve(call)
    if isinstance(answer, Err):
        return Some(Ok(answer))
    return Some(Ok(Ok(call.table.own(Kind.INCOMING_RESPONSE, answer.value))))


def _response(call: Call, store: Any, this: ResourceAny) -> IncomingResponse:
    return call.table.get(store, this, IncomingResponse)


def _status(call: Call, store: Any, this: ResourceAny) -> int:
    return _response(call, store, this).status


def _response_headers(call: Call, store: Any, this: ResourceAny) -> ResourceHost:
    response = _response(call, store, this)
    return call.table.own(Kind.FIELDS, Fields(response.headers.entries, immutable=True))


def _consume(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    response = _response(call, store, this)
    if response.consumed:
        return Err()
    response.consumed = True
    return Ok(call.table.own(Kind.INCOMING_BODY, IncomingBody(response.body)))


OPTION_TIMEOUTS = ("connect-timeout", "first-byte-timeout", "between-bytes-timeout")

INTERFACES = (
    Interface(
        "wasi:http/types",
        {
            "outgoing-request": Kind.OUTGOING_REQUEST,
            "request-options": Kind.REQUEST_OPTIONS,
            "incoming-response": Kind.INCOMING_RESPONSE,
            "future-incoming-response": Kind.FUTURE_INCOMING_RESPONSE,
        },
        {
            "[constructor]outgoing-request": _request_new,
            "[method]outgoing-request.body": _body,
            "[method]outgoing-request.method": _method,
            "[method]outgoing-request.set-method": _set_method,
            "[method]outgoing-request.path-with-query": _path,
            "[method]outgoing-request.set-path-with-query": _set_path,
            "[method]outgoing-request.scheme": _scheme,
            "[method]outgoing-request.set-scheme": _set_scheme,
            "[method]outgoing-request.authority": _authority,
            "[method]outgoing-request.set-authority": _set_authority,
            "[method]outgoing-request.headers": _request_headers,
            "[constructor]request-options": _options_new,
            **{f"[method]request-options.{n}": _timeout_get(n) for n in OPTION_TIMEOUTS},
            **{f"[method]request-options.set-{n}": _timeout_set(n) for n in OPTION_TIMEOUTS},
            "[method]future-incoming-response.subscribe": _future_subscribe,
            "[method]future-incoming-response.get": _future_get,
            "[method]incoming-response.status": _status,
            "[method]incoming-response.headers": _response_headers,
            "[method]incoming-response.consume": _consume,
        },
    ),
    Interface("wasi:http/outgoing-handler", {}, {"handle": _handle}),
)
