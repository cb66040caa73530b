"""A Spin app, unchanged: written with Spin's Python SDK (spin-sdk 3.4.1), built as Spin
builds it (spin.toml's command), deployed to unifaas as it is.

It counts the calls of each path in the function's key-value store and greets with the
``greeting`` variable (deploy with ``--env GREETING=...``).
"""

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        with key_value.open_default() as store:
            key = request.uri
            count = int((store.get(key) or b"0").decode()) + 1
            store.set(key, str(count).encode())
        greeting = variables.get("greeting")
        body = f"{greeting} {key}: {count}\n".encode()
        return Response(200, {"content-type": "text/plain"}, body)
