"""``/fn/...`` straight to the invoke handler, past FastAPI's routing and middleware.

A call's own work on the host is small next to what a request costs on its way through
FastAPI's layers (a linear match over every route, exception-handling wrappers, three
AsyncExitStacks, dependency solving, telemetry checks): about half of the host path of
a warm call, measured (docs in README, "The warm path"). So the app hands ``/fn/...``
requests to the same handler (:func:`gateway.routers.invoke.serve`) directly. The
answer is the same in every byte: the header limit, the error handler and the 500 of an
unexpected error are the ones the full stack applies; every other path, and a method
the invoke routes do not serve (405 with its Allow), still goes through FastAPI, whose
routes for ``/fn`` stay registered for the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import HeadersTooLarge, error_response
from gateway.routers import invoke
from wasm_runtime.errors import UnifaasError

PREFIX = "/fn/"
_METHODS = frozenset(invoke.METHODS)


class InvokeFastPath:
    def __init__(self, app: FastAPI, header_limit: int) -> None:
        self.app = app
        self.header_limit = header_limit
        # Starlette's own: a plain 500, then the exception re-raised for the server's log.
        self._guarded = ServerErrorMiddleware(self._serve, debug=app.debug)

    def takes(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            scope["type"] == "http"
            and path.startswith(PREFIX)
            and scope["method"] in _METHODS
            and not path.startswith("/", len(PREFIX))  # "/fn//x": FastAPI's 404, as before
            and len(path) > len(PREFIX)  # "/fn/": likewise
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app  # what Request.app reads
        await self._guarded(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if sum(len(k) + len(v) for k, v in scope["headers"]) > self.header_limit:
            response = error_response(HeadersTooLarge(self.header_limit))
        else:
            # The routes' own split: /fn/{name} and /fn/{name}/{path:path}.
            name, _, path = scope["path"][len(PREFIX) :].partition("/")
            try:
                response = await invoke.serve(Request(scope, receive, send), name, path)
            except UnifaasError as err:  # the app's exception handler
                response = error_response(err)
        await response(scope, receive, send)


class UnifaasApp(FastAPI):
    """FastAPI, with ``/fn/...`` served by :class:`InvokeFastPath` once it is set."""

    fast_path: InvokeFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and fast.takes(scope):
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
