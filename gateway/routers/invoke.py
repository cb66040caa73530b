"""``ANY /fn/{name}[/{path}]``: hand the request to the platform, map the outcome to a response."""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway import deps
from gateway.errors import BodyTooLarge, classify, error_response
from gateway.limits import read_body
from gateway.metrics.observation import Observation, observed
from gateway.metrics.telemetry import Telemetry
from gateway.openapi import COMMON, error_responses
from gateway.relay import ERROR_KIND_HEADER, NODE_HEADER, Relay
from scheduler.errors import (
    AccessDenied,
    CapacityExhausted,
    FunctionNotFound,
    InvalidCallback,
    NodeLost,
    NoNodeAvailable,
    PoolClosed,
    SandboxLost,
    SandboxUnavailable,
    StateStoreError,
    Throttled,
)
from scheduler.model import InvokeRequest
from scheduler.roles import InvokeOutcome, Platform
from wasm_runtime.errors import (
    BadCgiResponse,
    BadHttpResponse,
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
        InvalidCallback,
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
        BadHttpResponse,
    ),
    202: {
        "description": "with Prefer: respond-async: the call is queued; its status is at "
        "Location (/v1/invocations/{id}), its response at Location + /response",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["id", "status", "location"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["queued"]},
                        "location": {"type": "string"},
                    },
                }
            }
        },
        "headers": {
            "Location": {"description": "the call's status", "schema": {"type": "string"}},
            "Preference-Applied": {"description": "respond-async", "schema": {"type": "string"}},
        },
    },
    # Whatever status, headers and body the function itself answers.
    200: {"description": "the function's own response", "content": {"*/*": {}}},
    "default": {"description": "the function's own response", "content": {"*/*": {}}},
}
# The headers of an async call, for the schema (the route reads them from the request).
ASYNC_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "respond-async: queue the call and answer 202 at once",
        },
        {
            "name": "X-Callback-Url",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "with respond-async: POST the response here when the call ends "
            "(only to hosts UNIFAAS_ASYNC_CALLBACK_HOSTS allows; else 400)",
        },
    ]
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Hop-by-hop or framing headers the server sets itself.
_DROP_HEADERS = {"content-length", "transfer-encoding", "connection"}
# ... and, from a node's answer, those this gateway's server sets for itself.
_DROP_RELAYED = _DROP_HEADERS | {"date", "server"}


# An async call's result is POSTed there when it ends (to the hosts a setting allows).
CALLBACK_HEADER = "x-callback-url"
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
    if outcome.abi is not None:
        headers["X-Function-Abi"] = outcome.abi
    if outcome.result is not None:
        # Standard Server-Timing: the VM's round trip and, inside it, the function's run;
        # around it, the call's time in the platform (lookup, placement, the VM, parsing).
        headers["Server-Timing"] = (
            f"vm;dur={outcome.vm_ms:.3f}, run;dur={outcome.result.duration_ms:.3f}, "
            f"platform;dur={outcome.total_ms:.3f}"
        )
    return headers


async def serve(request: Request, name: str, path: str) -> Response:
    """A call to function ``name`` at ``path``: the route's handler (gateway.fastpath calls
    it directly)."""
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
    if prefers_async(request.headers.getlist("prefer")):
        return await _accept(request, name, invoke_request)
    relay = deps.relay(request)
    if relay is not None:
        return await _relayed(request, relay, name, invoke_request)
    return await answer(request, name, invoke_request)


async def answer(
    request: Request, name: str, invoke_request: InvokeRequest, *, node: str | None = None
) -> Response:
    """Run the call on this node's platform and answer as the caller gets it. For a
    gateway (``node`` set: this node's id) the answer names the node and the error kind."""
    platform = deps.local(request)
    outcome = await platform.invoke(name, invoke_request)
    return respond(platform, deps.telemetry(request), outcome, invoke_request, node=node)


def respond(
    platform: Platform,
    telemetry: Telemetry,
    outcome: InvokeOutcome,
    invoke_request: InvokeRequest,
    *,
    node: str | None = None,
) -> Response:
    """The response of a call that ran here, recorded (Redis, in the background) and
    observed (metrics): the sync call's, and the one an async call keeps."""
    want_stderr = any(k.lower() == STDERR_REQUEST_HEADER for k, _ in invoke_request.headers)
    meta = _meta_headers(outcome, want_stderr)
    if node is not None:
        meta[NODE_HEADER] = node
    if outcome.error is not None:
        status, kind = classify(outcome.error)
        platform.record(outcome, status)
        telemetry.observe(observed(outcome, status, kind))
        failed = error_response(
            outcome.error,
            invocation_id=outcome.invocation_id,
            stderr=outcome.stderr_tail.decode(errors="replace"),
        )
        failed.headers.update(meta)
        if node is not None:
            failed.headers[ERROR_KIND_HEADER] = kind
        return failed
    platform.record(outcome, outcome.status)
    telemetry.observe(observed(outcome, outcome.status, None))
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


def prefers_async(prefer: list[str]) -> bool:
    """RFC 7240: ``Prefer: respond-async`` among the preferences, in any header of them."""
    return any(
        part.split(";")[0].split("=")[0].strip().lower() == "respond-async"
        for header in prefer
        for part in header.split(",")
    )


async def _accept(request: Request, name: str, invoke_request: InvokeRequest) -> Response:
    """Queue the call (once its function is known) and answer where its result will be."""
    callback = request.headers.get(CALLBACK_HEADER)
    call_id = await deps.control(request).enqueue(name, invoke_request, callback)
    deps.telemetry(request).async_accepted_call(name)
    location = f"/v1/invocations/{call_id}"
    return JSONResponse(
        {"id": call_id, "status": "queued", "location": location},
        status_code=202,
        headers={"Location": location, "Preference-Applied": "respond-async"},
    )


async def invoke_root(request: Request, name: str) -> Response:
    return await serve(request, name, "")


async def invoke_path(request: Request, name: str, path: str) -> Response:
    return await serve(request, name, path)


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
        openapi_extra=ASYNC_PARAMETERS,
    )
    router.add_api_route(
        "/fn/{name}/{path:path}",
        invoke_path,
        methods=[_method],
        summary="Invoke a function at a path",
        operation_id=f"invoke_path_{_method.lower()}",
        responses=RESPONSES,
        response_class=Response,
        openapi_extra=ASYNC_PARAMETERS,
    )
