"""What the OpenAPI schema says about errors: the one error body, and per route the statuses it
can answer, looked up in ``ERROR_TABLE`` so a documented status is the one really sent."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, Field

from gateway.errors import (
    ERROR_HEADERS,
    BadRequest,
    HeadersTooLarge,
    RequestInvalid,
    Unauthorized,
    status_of,
)
from scheduler.errors import StateStoreError
from wasm_runtime.errors import UnifaasError


class FieldProblem(BaseModel):
    where: str = Field(description="the part of the request: path.name, query.limit, form.module")
    what: str


class ErrorDetail(BaseModel):
    kind: str = Field(description="stable, for programs; one per row of the status table")
    message: str = Field(description="for people")
    reason: str | None = Field(
        default=None, description="invalid_module only: memory_above_cap, not_wasm, ..."
    )
    errors: list[FieldProblem] | None = Field(default=None, description="invalid_request only")
    invocation_id: str | None = Field(default=None, description="invocations only")
    stderr: str | None = Field(default=None, description="invocations only: the stderr tail")


class ErrorBody(BaseModel):
    error: ErrorDetail


# What any route may answer: a request it cannot read or that does not match the schema,
# and a failure of ours.
COMMON: tuple[type[UnifaasError], ...] = (
    BadRequest,
    RequestInvalid,
    HeadersTooLarge,
    UnifaasError,
)
# What every /v1 route adds: the token, and the state store it reads.
MANAGEMENT: tuple[type[UnifaasError], ...] = (*COMMON, Unauthorized, StateStoreError)


def error_responses(*errors: type[UnifaasError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can raise ``errors``: one entry per status, naming
    its kinds, with the error body's schema and the headers that come with it."""
    kinds: dict[int, set[str]] = defaultdict(set)
    headers: dict[int, dict[str, Any]] = defaultdict(dict)
    for cls in errors:
        status, kind = status_of(cls)
        kinds[status].add(kind)
        for table_cls, header in ERROR_HEADERS.items():
            if issubclass(cls, table_cls):
                doc = {"description": header.doc, "schema": {"type": "string"}}
                headers[status][header.name] = doc
    return {
        status: {
            "model": ErrorBody,
            "description": "error kind: " + ", ".join(sorted(kinds[status])),
            **({"headers": headers[status]} if headers[status] else {}),
        }
        for status in sorted(kinds)
    }
