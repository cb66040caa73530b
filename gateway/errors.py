"""The one table from unifaas errors to HTTP statuses, and the JSON error body."""

from __future__ import annotations

from typing import Any

from scheduler.errors import (
    AccessDenied,
    CapacityExhausted,
    FunctionNotFound,
    InvalidConfig,
    InvocationNotFound,
    StateStoreError,
)
from scheduler.pool import PoolClosed
from unikernel.errors import VMGone
from wasm_runtime.errors import (
    BadCgiResponse,
    FunctionOOM,
    FunctionTimeout,
    FunctionTrap,
    InvalidModule,
    OutputTooLarge,
    UnifaasError,
    UnikernelError,
)


class BodyTooLarge(UnifaasError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class NotFound(UnifaasError):
    """A gateway resource (not a function) that does not exist."""


class Unauthorized(UnifaasError):
    def __init__(self) -> None:
        super().__init__("missing or wrong bearer token")


# (error class, HTTP status, kind). First match wins, so subclasses come first.
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (FunctionNotFound, 404, "not_found"),
    (InvocationNotFound, 404, "not_found"),
    (NotFound, 404, "not_found"),
    (InvalidModule, 400, "invalid_module"),
    (InvalidConfig, 400, "invalid_config"),
    (BodyTooLarge, 413, "body_too_large"),
    (Unauthorized, 401, "unauthorized"),
    (AccessDenied, 401, "unauthorized"),
    (FunctionTimeout, 504, "timeout"),
    (FunctionOOM, 500, "out_of_memory"),
    (FunctionTrap, 500, "trap"),
    (OutputTooLarge, 500, "output_too_large"),
    (BadCgiResponse, 502, "bad_cgi_response"),
    (CapacityExhausted, 503, "capacity"),
    (PoolClosed, 503, "shutting_down"),
    (VMGone, 503, "sandbox_lost"),
    (UnikernelError, 503, "sandbox_unavailable"),
    (StateStoreError, 503, "state_store_unavailable"),
    (UnifaasError, 500, "internal"),
]


def classify(err: BaseException) -> tuple[int, str]:
    for cls, status, kind in ERROR_TABLE:
        if isinstance(err, cls):
            return status, kind
    return 500, "internal"


def error_headers(err: BaseException) -> dict[str, str]:
    if isinstance(err, CapacityExhausted):
        return {"Retry-After": str(err.retry_after_s)}
    if isinstance(err, VMGone | StateStoreError):
        return {"Retry-After": "1"}
    if isinstance(err, Unauthorized | AccessDenied):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def error_body(err: BaseException, kind: str, **extra: Any) -> dict[str, Any]:
    message = getattr(err, "message", None) or str(err)
    return {"error": {"kind": kind, "message": message, **extra}}
