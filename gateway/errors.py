"""Errors of the HTTP edge and the CLI's client, the one table from errors to HTTP statuses,
and the JSON error body."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse

from scheduler.errors import (
    AccessDenied,
    BadNodeRequest,
    CapacityExhausted,
    FunctionNotFound,
    InvalidCallback,
    InvalidConfig,
    InvocationNotFound,
    NoNodeAvailable,
    NotDead,
    NotFinished,
    PoolClosed,
    SandboxLost,
    SandboxUnavailable,
    StateStoreError,
    Throttled,
)
from wasm_runtime.errors import (
    BadCgiResponse,
    BadHttpResponse,
    FunctionOOM,
    FunctionTimeout,
    FunctionTrap,
    InvalidModule,
    OutputTooLarge,
    UnifaasError,
)


class GatewayError(UnifaasError):
    """Root of the gateway's own errors."""


class BodyTooLarge(GatewayError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class HeadersTooLarge(GatewayError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request headers exceed the limit of {limit} bytes")
        self.limit = limit


class NotFound(GatewayError):
    """A gateway resource (not a function) that does not exist."""


class BadRequest(GatewayError):
    """The request cannot be read: broken multipart framing, a part too large, too many parts."""


class RequestInvalid(GatewayError):
    """The request is readable but does not match the schema (a missing part, a path or query
    parameter of the wrong type); ``errors`` names each problem as (where, what)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in errors))
        self.errors = errors


class MethodNotAllowed(GatewayError):
    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} is not allowed here; allowed: {', '.join(allowed)}")
        self.allowed = allowed


class Unauthorized(GatewayError):
    def __init__(self) -> None:
        super().__init__("missing or wrong bearer token")


class ManifestError(GatewayError):
    """A ``unifaas.toml`` that cannot be used; the message names its file and field."""


class ClientError(GatewayError):
    """A request of the CLI to the platform failed; ``status`` is 0 when no answer came."""

    def __init__(self, message: str, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


# Error class -> (HTTP status, kind). Looked up along the error's class
# hierarchy, most specific class first, so the order of entries never matters.
ERROR_TABLE: dict[type[UnifaasError], tuple[int, str]] = {
    FunctionNotFound: (404, "not_found"),
    InvocationNotFound: (404, "not_found"),
    NotFound: (404, "not_found"),
    InvalidModule: (400, "invalid_module"),
    InvalidConfig: (400, "invalid_config"),
    BadRequest: (400, "bad_request"),
    BadNodeRequest: (400, "bad_request"),
    RequestInvalid: (422, "invalid_request"),
    MethodNotAllowed: (405, "method_not_allowed"),
    Throttled: (429, "throttled"),
    BodyTooLarge: (413, "body_too_large"),
    HeadersTooLarge: (431, "headers_too_large"),
    Unauthorized: (401, "unauthorized"),
    AccessDenied: (401, "unauthorized"),
    FunctionTimeout: (504, "timeout"),
    FunctionOOM: (500, "out_of_memory"),
    FunctionTrap: (500, "trap"),
    OutputTooLarge: (500, "output_too_large"),
    BadCgiResponse: (502, "bad_cgi_response"),
    BadHttpResponse: (502, "bad_response"),
    CapacityExhausted: (503, "capacity"),
    PoolClosed: (503, "shutting_down"),
    SandboxLost: (503, "sandbox_lost"),
    SandboxUnavailable: (503, "sandbox_unavailable"),
    StateStoreError: (503, "state_store_unavailable"),
    NoNodeAvailable: (503, "no_node"),
    InvalidCallback: (400, "invalid_callback"),
    NotFinished: (409, "not_finished"),
    NotDead: (409, "not_dead"),
    UnifaasError: (500, "internal"),
}
UNKNOWN_ERROR = (500, "internal")


def status_of(cls: type[BaseException]) -> tuple[int, str]:
    """The HTTP status and kind of an error class: its most specific class in the table."""
    for base in cls.__mro__:
        entry = ERROR_TABLE.get(base)
        if entry is not None:
            return entry
    return UNKNOWN_ERROR


def classify(err: BaseException) -> tuple[int, str]:
    return status_of(type(err))


@dataclasses.dataclass(frozen=True)
class ErrorHeader:
    """A header an error's response carries: its value from the error, and what the
    OpenAPI schema says of it."""

    name: str
    value: Callable[[Any], str]
    doc: str


_RETRY_AFTER = ErrorHeader("Retry-After", lambda err: str(err.retry_after_s), "seconds to wait")
_RETRY_SOON = ErrorHeader("Retry-After", lambda err: "1", "seconds until a retry")
_BEARER = ErrorHeader("WWW-Authenticate", lambda err: "Bearer", "Bearer")
# Error class -> the header its answers carry; the one place both the answers and the
# schema read (an error is an instance of at most one of these classes).
ERROR_HEADERS: dict[type[UnifaasError], ErrorHeader] = {
    CapacityExhausted: _RETRY_AFTER,
    Throttled: _RETRY_AFTER,
    NoNodeAvailable: _RETRY_AFTER,
    NotFinished: _RETRY_AFTER,
    SandboxLost: _RETRY_SOON,
    StateStoreError: _RETRY_SOON,
    Unauthorized: _BEARER,
    AccessDenied: _BEARER,
    MethodNotAllowed: ErrorHeader(
        "Allow", lambda err: ", ".join(err.allowed), "the methods served at this path"
    ),
}


def error_headers(err: BaseException) -> dict[str, str]:
    return {h.name: h.value(err) for cls, h in ERROR_HEADERS.items() if isinstance(err, cls)}


def error_message(err: BaseException) -> str:
    return err.message if isinstance(err, UnifaasError) else str(err)


def error_body(err: BaseException, kind: str, **extra: Any) -> dict[str, Any]:
    if isinstance(err, InvalidModule | BadHttpResponse):
        extra["reason"] = err.reason  # stable, for programs: memory_above_cap, no_response, ...
    if isinstance(err, RequestInvalid):
        extra["errors"] = [{"where": where, "what": what} for where, what in err.errors]
    return {"error": {"kind": kind, "message": error_message(err), **extra}}


def error_response(err: BaseException, **extra: Any) -> JSONResponse:
    """The error's status, body and headers, as every route answers it."""
    status, kind = classify(err)
    body = error_body(err, kind, **extra)
    return JSONResponse(body, status_code=status, headers=error_headers(err))
