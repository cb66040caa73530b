"""The one exception hierarchy of unifaas.

It lives in the lowest package because every other package (and the guest
agent) imports it::

    UnifaasError                       root: catch this to catch everything of ours
    +-- WasmRuntimeError               wasm_runtime: modules and invocations
    |   +-- InvalidModule(reason)      not wasm / no _start / imports outside WASI p1 / ...
    |   +-- FunctionNotLoaded(fn_id)   invoke/unload of a function the agent does not hold
    |   +-- BadCgiResponse(raw)        a WAGI function's stdout is not headers + blank line + body
    |   +-- InvocationFailed(result)   a run that did not finish normally; one per outcome:
    |       +-- FunctionTimeout        wall-clock limit hit (epoch interruption)
    |       +-- FunctionOOM            linear-memory cap hit
    |       +-- FunctionTrap           wasm trap (unreachable, bad memory access, ...)
    |       +-- OutputTooLarge         stdout/stderr cap hit
    +-- ProtocolError(raw)             shim<->agent wire: bad frame, bad message, version
    +-- AgentError(code, message)      the agent answered a request with an error code
    +-- UnikernelError                 unikernel: images and VMs (subclasses in unikernel.errors)

Errors carry structured fields; nothing classifies an error by its message text.
Errors cross the VM boundary as :class:`ErrorCode` values and are turned back
into exceptions by :func:`error_from_code`, the single table for that.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wasm_runtime.types import InvocationResult


class UnifaasError(Exception):
    """Root of every error raised by unifaas code."""


class WasmRuntimeError(UnifaasError):
    """Something about a WebAssembly module or one run of it."""


class InvalidModule(WasmRuntimeError):
    """The bytes are not a module unifaas can run; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class FunctionNotLoaded(WasmRuntimeError):
    def __init__(self, fn_id: str) -> None:
        super().__init__(f"function {fn_id!r} is not loaded in this sandbox")
        self.fn_id = fn_id


class BadCgiResponse(WasmRuntimeError):
    """A WAGI function's output does not start with a valid CGI header block.

    ``raw`` keeps the start of the output (truncated) for diagnosis.
    """

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw[:256]


class InvocationFailed(WasmRuntimeError):
    """A run ended abnormally; ``result`` still holds its output and timings."""

    def __init__(self, result: InvocationResult) -> None:
        super().__init__(f"{result.outcome.value}: {result.message}".rstrip(": "))
        self.result = result


class FunctionTimeout(InvocationFailed):
    pass


class FunctionOOM(InvocationFailed):
    pass


class FunctionTrap(InvocationFailed):
    pass


class OutputTooLarge(InvocationFailed):
    pass


class ProtocolError(UnifaasError):
    """A frame or message on the shim<->agent channel is malformed.

    ``raw`` keeps the offending bytes (truncated) for diagnosis.
    """

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw[:256]


class UnikernelError(UnifaasError):
    """Base for guest image and VM errors (see ``unikernel.errors``)."""


class ErrorCode(enum.StrEnum):
    """Codes for errors that cross the VM boundary in an error reply."""

    BAD_FRAME = "bad_frame"
    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    INVALID_MODULE = "invalid_module"
    NOT_LOADED = "not_loaded"
    INTERNAL = "internal"


class AgentError(UnifaasError):
    """The agent answered with an error code we have no more specific class for."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"agent error {code}: {message}")
        self.code = code
        self.message = message


def error_from_code(code: str, message: str, detail: dict[str, Any] | None = None) -> UnifaasError:
    """The one table from wire error codes back to exceptions."""
    detail = detail or {}
    if code == ErrorCode.INVALID_MODULE:
        return InvalidModule(str(detail.get("reason", "invalid")), message)
    if code == ErrorCode.NOT_LOADED:
        return FunctionNotLoaded(str(detail.get("fn_id", "?")))
    if code in (ErrorCode.BAD_FRAME, ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_OP):
        return ProtocolError(f"agent rejected request ({code}): {message}")
    return AgentError(code, message)
