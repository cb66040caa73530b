"""``ANY /fn/{name}[/{path}]``: hand the request to the platform, map the outcome to a response."""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway import deps
from gateway.errors import BodyTooLarge, classify, error_response
from gateway.limits import read_body
from gateway.observation import Observation, observed
from gateway.openapi import COMMON, error_responses
from gateway.relay import ERROR_KIND_HEADER, NODE_HEADER, Relay
from scheduler.errors import (
    AccessDenied,
    CapacityExhausted,
    FunctionNotFound,
    NodeLost,
    NoNodeAvailable,
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
    UnifaasError,
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
        NodeLost,
        NoNodeAvailable,
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
# ... and, from a node's answer, those this gateway's server sets for itself.
_DROP_RELAYED = _DROP_HEADERS | {"date", "server"}


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
    deps.local(request).record(outcome, status)
    deps.telemetry(request).observe(observed(outcome, status, kind))


async def _invoke(request: Request, name: str, path: str) -> Response:
    settings = deps.settings(request)
    body = await read_body(request, settings.max_body_bytes)  # BodyTooLarge: the app's 413
    client = request.client
    invoke_request = InvokeRequest(
        method=request.method,
        path_info=f"/{path}" if path else "",
        query_string=request.url.query,
        headers=[(k, v) for k, v in request.headers.items()],
        body=body,
        remote_addr=client.host if client else "",
        server_name=request.url.hostname or "localhost",
        server_port=request.url.port or settings.port,
        authorized=deps.is_authorized(request),
    )
    relay = deps.relay(request)
    if relay is not None:
        return await _relayed(request, relay, name, invoke_request)
    return await answer(request, name, invoke_request)


async def answer(
    request: Request, name: str, invoke_request: InvokeRequest, *, node: str | None = None
) -> Response:
    """Run the call on this node's platform and answer as the caller gets it. For a
    gateway (``node`` set: this node's id) the answer names the node and the error kind."""
    outcome = await deps.local(request).invoke(name, invoke_request)
    want_stderr = any(k.lower() == STDERR_REQUEST_HEADER for k, _ in invoke_request.headers)
    meta = _meta_headers(outcome, want_stderr)
    if node is not None:
        meta[NODE_HEADER] = node
    if outcome.error is not None:
        status, kind = classify(outcome.error)
        _finish(request, outcome, status, kind)
        failed = error_response(
            outcome.error,
            invocation_id=outcome.invocation_id,
            stderr=outcome.stderr_tail.decode(errors="replace"),
        )
        failed.headers.update(meta)
        if node is not None:
            failed.headers[ERROR_KIND_HEADER] = kind
        return failed
    _finish(request, outcome, outcome.status, None)
    response = Response(content=outcome.body, status_code=outcome.status)
    for key, value in outcome.headers:
        if key.lower() not in _DROP_HEADERS:
            response.headers.append(key, value)
    for key, value in meta.items():
        response.headers[key] = value
    return response


async def _relayed(
    request: Request, relay: Relay, name: str, invoke_request: InvokeRequest
) -> Response:
    """A gateway's call: its node's answer, as the node gave it."""
    started = time.perf_counter()
    try:
        relayed = await relay.invoke(name, invoke_request)
    except UnifaasError as err:
        status, kind = classify(err)
        deps.telemetry(request).observe(
            Observation.failed(name, status, kind, err, (time.perf_counter() - started) * 1000)
        )
        failed = error_response(err)
        failed.headers["X-Retries"] = str(getattr(err, "retries", 0))
        return failed
    response = Response(content=relayed.body, status_code=relayed.status)
    for key, value in relayed.headers:
        if key.lower() not in _DROP_RELAYED:
            response.headers.append(key, value)
    if relayed.reruns:
        node_retries = int(response.headers.get("X-Retries", "0") or 0)
        response.headers["X-Retries"] = str(node_retries + relayed.reruns)
    deps.telemetry(request).observe(
        Observation.relayed(name, relayed, (time.perf_counter() - started) * 1000)
    )
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
