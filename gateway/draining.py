"""Keep-alive connections closed by the client's next answer, not under its feet.

A stopping uvicorn closes every idle keep-alive connection at once. A client that sent
its next request on one at that moment gets the connection closed with no answer (the
keep-alive race), which for a POST it cannot tell from a call cut in the middle. So a
stopping server first answers every request with ``Connection: close`` (the server then
closes that connection itself, right after a complete answer, and the client opens a new
one, which the stopping listener refuses), and only closes what is still idle after a
short linger (gateway.up).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CLOSE = (b"connection", b"close")


class CloseWhenDraining:
    """The app, answering ``Connection: close`` once :meth:`drain` was called."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.draining = False

    def drain(self) -> None:
        self.draining = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.draining or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self.app(scope, receive, closing)
