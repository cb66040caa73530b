"""A Python HTTP function for unifaas: a wasi:http/proxy component built by componentize-py.

Routes: GET / says hello in JSON; POST /echo answers the JSON it was sent, with the number of
its keys; anything else is a JSON 404. Its stdout is the call's log (`unifaas logs`).
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
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
        method = request.method()
        path = (request.path_with_query() or "/").split("?")[0]
        print(f"{type(method).__name__} {path}")
        if isinstance(method, Method_Get) and path == "/":
            answer(response_out, 200, {"hello": "from Python in a microVM"})
        elif isinstance(method, Method_Post) and path == "/echo":
            try:
                sent = json.loads(read_body(request) or b"null")
            except ValueError as err:
                answer(response_out, 400, {"error": f"not JSON: {err}"})
                return
            keys = len(sent) if isinstance(sent, dict) else 0
            answer(response_out, 200, {"echo": sent, "keys": keys})
        else:
            answer(response_out, 404, {"error": f"no route for {path}"})
