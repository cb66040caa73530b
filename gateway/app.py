"""The FastAPI app factory: routers, the error handler, and the objects a request may use."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.errors import classify, error_body, error_headers
from gateway.routers import functions, invoke, system
from gateway.settings import GatewaySettings
from gateway.telemetry import Telemetry
from scheduler.service import Platform
from wasm_runtime.errors import UnifaasError


def create_app(platform: Platform, token: str, settings: GatewaySettings) -> FastAPI:
    """Build the app around an already-started platform (its owner stops it)."""
    app = FastAPI(
        title="unifaas",
        version="0.1.0",
        description="WebAssembly functions in unikernel-style microVMs.",
    )
    app.state.platform = platform
    app.state.token = token
    app.state.settings = settings
    app.state.telemetry = Telemetry(platform)

    @app.exception_handler(UnifaasError)
    async def unifaas_error(request: Request, err: UnifaasError) -> JSONResponse:
        status, kind = classify(err)
        return JSONResponse(error_body(err, kind), status_code=status, headers=error_headers(err))

    app.include_router(system.router)
    app.include_router(functions.router)
    app.include_router(invoke.router)
    return app
