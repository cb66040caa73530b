"""``ANY /fn/{name}[/{path}]``: hand the request to the platform, map the outcome to a response."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway import deps
from gateway.errors import BodyTooLarge, classify, error_response
from gateway.limits import read_body
from gateway.openapi import COMMON, error_responses
from scheduler.errors import (
    AccessDenied,
    CapacityExhausted,
    FunctionNotFound,
    PoolClosed,
    SandboxLost,
    SandboxUnavailable,
    StateStoreError,
    Throttled,
)
from scheduler.service import InvokeOutcome, InvokeRequest
from wasm_runtime.errors import (
    BadCgiResponse,
    FunctionOOM,
    FunctionTimeout,
    FunctionTrap,
    OutputTooLarge,
)

router = APIRouter(tags=["invoke"])
# Besides the function's own answer: everything a call can meet on its way through the layers.
RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(
        *COMMON,
        FunctionNotFound,
        AccessDenied,
        BodyTooLarge,
        Throttled,
        CapacityExhausted,
        PoolClosed,
        SandboxLost,
        SandboxUnavailable,
        StateStoreError,
        FunctionTimeout,
        FunctionOOM,
        FunctionTrap,
        OutputTooLarge,
        BadCgiResponse,
    ),
    # Whatever status, headers and body the function itself answers.
    200: {"description": "the function's own response", "content": {"*/*": {}}},
    "default": {"description": "the function's own response", "content": {"*/*": {}}},
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Hop-by-hop or framing headers the server sets itself.
_DROP_HEADERS = {"content-length", "transfer-encoding", "connection"}


# The CLI asks for the function's stderr with this header; it comes back
# base64-encoded (tail only) so any bytes survive a header.
STDERR_REQUEST_HEADER = "x-unifaas-stderr"


def _meta_headers(outcome: InvokeOutcome, want_stderr: bool) -> dict[str, str]:
    headers = {
        "X-Invocation-Id": outcome.invocation_id,
        "X-Exit-Code": str(outcome.exit_code),
        "X-Retries": str(outcome.retries),
    }
    if want_stderr and outcome.stderr:
        headers["X-Stderr"] = base64.b64encode(outcome.stderr_tail).decode()
    if outcome.start is not None:
        headers["X-Start"] = outcome.start.value
    if outcome.version is not None:
        headers["X-Function-Version"] = str(outcome.version)
    if outcome.result is not None:
        # Standard Server-Timing: the VM's round trip and, inside it, the function's run.
        headers["Server-Timing"] = (
            f"vm;dur={outcome.vm_ms:.3f}, run;dur={outcome.result.duration_ms:.3f}"
        )
    return headers


def _finish(request: Request, outcome: InvokeOutcome, status: int, kind: str | None) -> None:
    """Record the invocation (Redis, in the background) and observe it (metrics)."""
    deps.platform(request).record(outcome, status)
    deps.telemetry(request).observe(outcome, status, kind)


async def _invoke(request: Request, name: str, path: str) -> Response:
    platform = deps.platform(request)
    settings = deps.settings(request)
    body = await read_body(request, settings.max_body_bytes)  # BodyTooLarge: the app's 413
    client = request.client
    outcome = await platform.invoke(
        name,
        InvokeRequest(
            method=request.method,
            path_info=f"/{path}" if path else "",
            query_string=request.url.query,
            headers=[(k, v) for k, v in request.headers.items()],
            body=body,
            remote_addr=client.host if client else "",
            server_name=request.url.hostname or "localhost",
            server_port=request.url.port or settings.port,
            authorized=deps.is_authorized(request),
        ),
    )
    meta = _meta_headers(outcome, STDERR_REQUEST_HEADER in request.headers)
    if outcome.error is not None:
        status, kind = classify(outcome.error)
        _finish(request, outcome, status, kind)
        failed = error_response(
            outcome.error,
            invocation_id=outcome.invocation_id,
            stderr=outcome.stderr_tail.decode(errors="replace"),
        )
        failed.headers.update(meta)
        return failed
    _finish(request, outcome, outcome.status, None)
    response = Response(content=outcome.body, status_code=outcome.status)
    for key, value in outcome.headers:
        if key.lower() not in _DROP_HEADERS:
            response.headers.append(key, value)
    for key, value in meta.items():
        response.headers[key] = value
    return response


async def invoke_root(request: Request, name: str) -> Response:
    return await _invoke(request, name, "")


async def invoke_path(request: Request, name: str, path: str) -> Response:
    return await _invoke(request, name, path)


# One route per method so each gets its own OpenAPI operation id.
for _method in METHODS:
    router.add_api_route(
        "/fn/{name}",
        invoke_root,
        methods=[_method],
        summary="Invoke a function",
        operation_id=f"invoke_{_method.lower()}",
        responses=RESPONSES,
        response_class=Response,
    )
    router.add_api_route(
        "/fn/{name}/{path:path}",
        invoke_path,
        methods=[_method],
        summary="Invoke a function at a path",
        operation_id=f"invoke_path_{_method.lower()}",
        responses=RESPONSES,
        response_class=Response,
    )
