"""The error-to-status table: looked up along the class hierarchy, most specific first."""

from __future__ import annotations

from gateway.errors import ERROR_TABLE, BodyTooLarge, classify, error_body
from scheduler.errors import (
    FunctionNotFound,
    InvalidConfig,
    SandboxLost,
    SandboxUnavailable,
    SchedulerError,
)
from wasm_runtime.errors import FunctionTimeout, InvocationFailed, UnifaasError
from wasm_runtime.types import InvocationResult, Outcome


class NewNotFound(FunctionNotFound):
    """A subclass the table does not list: it inherits its parent's answer."""


def test_most_specific_class_wins_whatever_the_order() -> None:
    assert classify(SandboxLost("gone")) == (503, "sandbox_lost")
    assert classify(SandboxUnavailable("no")) == (503, "sandbox_unavailable")
    assert classify(NewNotFound("f")) == (404, "not_found")
    assert classify(SchedulerError("?")) == (500, "internal")
    result = InvocationResult(Outcome.TIMEOUT, 124)
    assert classify(FunctionTimeout(result)) == (504, "timeout")
    assert classify(InvocationFailed(result)) == (500, "internal")
    assert classify(ValueError("not ours")) == (500, "internal")


def test_every_status_in_the_table_is_an_error_status() -> None:
    assert all(400 <= status < 600 for status, _ in ERROR_TABLE.values())


def test_error_body_carries_the_message() -> None:
    assert error_body(InvalidConfig("memory_mib", "must be 1..1024"), "invalid_config") == {
        "error": {"kind": "invalid_config", "message": "memory_mib: must be 1..1024"}
    }
    assert BodyTooLarge(10).message == "request body exceeds the limit of 10 bytes"
    assert isinstance(BodyTooLarge(1), UnifaasError)
