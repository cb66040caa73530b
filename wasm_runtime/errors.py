"""The one exception hierarchy of unifaas, drawn here in full.

The root lives in the lowest package because every other package (and the
guest agent) imports it. Each package defines its own sub-root in its
``errors`` module; this tree lists every class, wherever it is defined::

    UnifaasError(message)                 root: catch this to catch everything of ours
    +-- UsageError                        a command-line argument names something unusable
    +-- WasmRuntimeError                  wasm_runtime: modules and invocations
    |   +-- InvalidModule(reason)         not wasm / no _start / imports outside WASI p1 / ...
    |   +-- CompileWorkerError            the compiling child failed (ours, not the module's)
    |   +-- FunctionNotLoaded(fn_id)      invoke/unload of a function the agent does not hold
    |   +-- BadCgiResponse(raw)           a WAGI function's stdout is not headers + blank + body
    |   +-- BadHttpResponse(reason)       a component set no response, or an error-code instead
    |   +-- InvocationFailed(result)      a run that did not finish normally; one per outcome:
    |       +-- FunctionTimeout           wall-clock limit hit (epoch interruption)
    |       +-- FunctionOOM               linear-memory cap hit
    |       +-- FunctionTrap              wasm trap (unreachable, bad memory access, ...)
    |       +-- OutputTooLarge            stdout/stderr cap hit
    +-- ProtocolError(raw)                shim<->agent wire: bad frame, bad message, version
    |   +-- UnknownOp(req_id)             a readable request naming an op not implemented
    +-- AgentError(code)                  the agent answered with an error code of no other class
    +-- UnikernelError                    unikernel.errors: images and VMs
    |   +-- ImageBuildError(part, stage, log_tail)   kernel, floor init or initramfs build
    |   +-- VMLaunchError(exitcode, argv, log_tail)  QEMU did not get as far as a ready agent
    |   +-- VMGone(reason, exitcode)      QEMU or the agent went away; pending calls fail with it
    |   |   +-- AgentUnresponsive         a call outlived its deadline; the VM was killed
    |   +-- QMPCommandError(command)      QEMU refused a QMP command
    |   +-- ConfinementError              the host cannot confine a VM as its settings ask
    +-- SchedulerError                    scheduler.errors: registry, pool, node
    |   +-- FunctionNotFound(name, version)
    |   +-- InvocationNotFound(invocation_id)
    |   +-- InvalidConfig(field)          a deploy's name, config or files are unusable
    |   +-- AccessDenied(name)            a private function invoked without the token
    |   +-- CapacityExhausted(retry_after_s)  no VM slot: queue full or its wait timed out
    |   +-- Throttled(retry_after_s)      a function at its own in-flight or rate limit
    |   +-- PoolClosed                    the pool is shutting down
    |   +-- SandboxError                  a VM failed the platform (from UnikernelError, once)
    |   |   +-- SandboxLost               the VM of a call went away before it answered
    |   |   |   +-- NodeLost              ... its node went away, twice (gateway to node)
    |   |   +-- SandboxUnavailable        no VM could be started for a call
    |   +-- InvalidTransition(vm_id, state, event)  a pool VM was driven against its table
    |   +-- NoNodeAvailable(retry_after_s)  a gateway has no live node for a call
    |   +-- BadNodeRequest                a node's internal API got an unreadable request
    |   +-- InvalidCallback               an X-Callback-Url malformed or not allowed
    |   +-- NotFinished(status)           an async call's response asked before it has one
    |   +-- NotDead                       a retry asked of an async call that is not dead
    |   +-- StateStoreError               Redis unreachable or erroring (translated once)
    |       +-- RedisNotInstalled(binary)
    |       +-- RedisStartError(log_tail)
    +-- GatewayError                      gateway.errors: HTTP edge and the CLI's client
    |   +-- BodyTooLarge(limit)
    |   +-- HeadersTooLarge(limit)
    |   +-- NotFound                      a gateway resource (not a function) that does not exist
    |   +-- BadRequest                    unreadable request: broken multipart, part too large
    |   +-- RequestInvalid(errors)        readable but not as the schema says (missing part, ...)
    |   +-- MethodNotAllowed(allowed)     a route that exists, asked with another method
    |   +-- Unauthorized                  missing or wrong bearer token
    |   +-- ManifestError                 a unifaas.toml that cannot be used (names file, field)
    |   +-- ClientError(status, kind)     the CLI's request to the platform failed
    +-- DevkitError                       devkit.errors: unifaas new, build, toolchain
    |   +-- UnknownTemplate               unifaas new --template names none there is
    |   +-- ToolchainMissing              a build's toolchain is not installed (says how)
    |   +-- BuildFailed                   a manifest's build command failed (its output's end)
    +-- HarnessError                      loadtests.errors: benches and the server launcher
    |   +-- LaunchError                   a child server exited early or never got healthy
    |   +-- BenchError                    a benchmark could not run as planned
    +-- ContainerError(stage)             container.errors: the image's build and its stack
        +-- DockerUnavailable             no Docker daemon answers

Errors carry structured fields and a ``message``; nothing classifies an error
by its text. Errors cross the VM boundary as :class:`ErrorCode` values and are
turned back into exceptions by :func:`error_from_code`, the single table for
that. The HTTP status of each is looked up along its class hierarchy in
``gateway.errors`` (most specific class wins).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wasm_runtime.types import InvocationResult


class UnifaasError(Exception):
    """Root of every error raised by unifaas code; ``message`` is what a user is shown."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(UnifaasError):
    """A command-line argument names something unusable (a file that cannot be read, ...)."""


class WasmRuntimeError(UnifaasError):
    """Something about a WebAssembly module or one run of it."""


class InvalidModule(WasmRuntimeError):
    """The bytes are not a module unifaas can run; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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
        self.raw = raw[:256]


class BadHttpResponse(WasmRuntimeError):
    """A component's handler returned without setting its response (``reason``
    ``no_response``), or set an ``error-code`` instead (``reason`` is that case's name)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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


class UnknownOp(ProtocolError):
    """A readable request naming an op this side does not implement."""

    def __init__(self, req_id: int, op: object) -> None:
        super().__init__(f"unknown op {op!r}")
        self.req_id = req_id


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
