"""__NAME__: a unifaas function in Python, a wasi:http component built by componentize-py.

It answers every request with JSON saying what it received. Its stdout is the call's log
(``unifaas logs``). ``wit_world`` is the bindings componentize-py generates for the
wasi:http/proxy world when it builds the function.
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    data = b""
    try:
        while True:
            data += stream.blocking_read(64 * 1024)
    except Err:
        pass  # the stream is closed: the whole body was read
    stream.__exit__(None, None, None)
    body.__exit__(None, None, None)
    return data


def answer(response_out: ResponseOutparam, status: int, document: object) -> None:
    payload = json.dumps(document).encode()
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    stream.blocking_write_and_flush(payload)
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = type(request.method()).__name__.removeprefix("Method_").upper()
        path = (request.path_with_query() or "/").split("?")[0]
        received = read_body(request)
        print(f"{method} {path} ({len(received)} bytes)")
        answer(
            response_out,
            200,
            {
                "function": "__NAME__",
                "language": "python",
                "method": method,
                "path": path,
                "received_bytes": len(received),
            },
        )
