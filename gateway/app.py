"""The FastAPI app factory: routers, the error handler, and the objects a request may use."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gateway.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    RequestInvalid,
    error_response,
)
from gateway.fastpath import InvokeFastPath, UnifaasApp
from gateway.limits import HeaderLimit
from gateway.metrics.telemetry import Telemetry
from gateway.relay import Relay
from gateway.routers import functions, internal, invocations, invoke, system
from gateway.settings import GatewaySettings
from scheduler.roles import Cluster, Platform
from wasm_runtime.errors import UnifaasError


def create_app(
    control: Platform | Cluster, token: str, settings: GatewaySettings, relay: Relay | None = None
) -> FastAPI:
    """Build the app around an already-started node platform, or a gateway's cluster and
    its relay to the nodes (their owner stops them)."""
    app = UnifaasApp(
        title="unifaas",
        version="0.1.0",
        description="WebAssembly functions in unikernel-style microVMs.",
    )
    platform = control if isinstance(control, Platform) else None
    if platform is None and relay is None:
        raise ValueError("a gateway's app needs its relay to the nodes")
    app.state.control = control
    app.state.platform = platform
    app.state.relay = relay
    app.state.token = token
    app.state.settings = settings
    app.state.telemetry = Telemetry(platform, relay)

    @app.exception_handler(UnifaasError)
    async def unifaas_error(request: Request, err: UnifaasError) -> JSONResponse:
        return error_response(err)

    # FastAPI's and Starlette's own refusals answer in the same body as ours.
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(RequestInvalid([_problem(e) for e in err.errors()]))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(_translated(request, err))

    app.add_middleware(HeaderLimit, limit=settings.max_header_bytes)
    app.include_router(system.router)
    app.include_router(functions.router)
    app.include_router(invocations.router)
    app.include_router(invoke.router)
    if platform is not None:
        app.include_router(internal.router)
    app.fast_path = InvokeFastPath(app, settings.max_header_bytes)
    return app


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _problem(error: Any) -> tuple[str, str]:
    # Only where and what: the rejected input itself may be large or secret.
    loc = error.get("loc", ())
    return ".".join(str(part) for part in loc) or "request", str(error.get("msg", "invalid"))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own Allow names only the
    first route that matched the path, and several serve each path here; asking the
    routes per method does not depend on how FastAPI nests included routers."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


def _translated(request: Request, err: HTTPException) -> UnifaasError:
    if err.status_code == 405:
        return MethodNotAllowed(request.method, _allowed_methods(request))
    if err.status_code == 404:
        return NotFound(f"no route {request.url.path}")
    return BadRequest(str(err.detail))
