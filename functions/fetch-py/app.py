"""Outbound HTTP from a Python function: GET /?url=URL fetches URL through the platform and
answers its status, length and start in JSON.

The guest has no network: the host sends the request, and only to hosts the function was
deployed with (``unifaas deploy fetch-py fetch-py.wasm --allow-host HOST[:PORT]``); any
other answers 403 here, from the ``HTTP-request-denied`` error the platform gives.
"""

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.types import (
    ErrorCode_HttpRequestDenied,
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)


def fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    future = outgoing_handler.handle(request, None)
    pollable = future.subscribe()
    pollable.block()
    got = future.get()
    if got is None or isinstance(got, Err):
        raise RuntimeError("the response was not there")
    response = got.value.value if isinstance(got.value, Ok) else None
    if response is None:
        raise got.value  # an Err of the error-code
    body = response.consume()
    stream = body.stream()
    data = b""
    try:
        while True:
            data += stream.blocking_read(64 * 1024)
    except Err:
        pass
    return response.status(), data


def answer(response_out: ResponseOutparam, status: int, document: object) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    stream.blocking_write_and_flush(json.dumps(document).encode())
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        query = parse_qs(urlsplit(request.path_with_query() or "/").query)
        url = (query.get("url") or [""])[0]
        if not url:
            answer(response_out, 400, {"error": "give ?url=http://HOST[:PORT]/PATH"})
            return
        try:
            status, data = fetch(url)
        except Err as err:
            code = err.value
            denied = isinstance(code, ErrorCode_HttpRequestDenied)
            answer(response_out, 403 if denied else 502, {"error": type(code).__name__})
            return
        text = data[:100].decode(errors="replace")
        answer(response_out, 200, {"status": status, "length": len(data), "start": text})
