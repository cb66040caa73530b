"""Limits on a request before anything parses it: its headers' size, its body's size."""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import BodyTooLarge, HeadersTooLarge, error_response


class HeaderLimit:
    """ASGI middleware: a request whose header lines (names and values) pass ``limit`` bytes
    gets 431 in the usual error body, whatever its route (the HTTP server's own parser only
    refuses far larger heads, with a bare 400)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.limit:
                await error_response(HeadersTooLarge(self.limit))(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as the declared or received size passes
    ``limit``. Starlette keeps it, so a later ``request.form()`` parses these bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise BodyTooLarge(limit)
    body = bytes(chunks)
    request._body = body  # Starlette's own cache, which request.form() reads
    return body
