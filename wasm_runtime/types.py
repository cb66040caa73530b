"""Plain data passed between the host, the wire and the runner: limits, invocations, results."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, TypeVar

MIB = 1024 * 1024
# The largest linear-memory cap a call may have (a deploy's --memory is checked against it).
MEMORY_CAP_MAX_MIB = 1024
_D = TypeVar("_D")


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def known_fields(cls: type[_D], data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that name a field of the dataclass ``cls`` (others dropped):
    readers of wire or stored data ignore fields a newer writer added."""
    names = field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def wire_bytes(value: object) -> bytes:
    """Bytes read off the wire: only bytes are bytes (``bytes(10**12)`` would allocate a
    terabyte of zeros for a peer that sent a number)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def flat_dict(obj: object) -> dict[str, Any]:
    """A flat dataclass's fields as a dict: ``dataclasses.asdict`` without its deep copy,
    which on the call path (a result per call, in a TCG guest) costs ten times more."""
    return {name: getattr(obj, name) for name in field_names(type(obj))}


# Exit codes reported when the function did not choose one itself; they follow
# the shell's conventions so a CLI user recognises them.
EXIT_TIMEOUT = 124
EXIT_TRAP = 134
EXIT_OOM = 137
EXIT_OUTPUT_TOO_LARGE = 141


class Outcome(enum.StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    TRAP = "trap"
    OUTPUT_TOO_LARGE = "output_too_large"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-invocation limits, applied to a fresh Store for every call."""

    timeout_ms: int = 10_000  # wall clock, enforced by epoch interruption
    memory_bytes: int = 64 * MIB  # cap on linear memory (all memories of the instance)
    fuel: int | None = None  # None = unmetered
    stdout_max_bytes: int = 4 * MIB
    stderr_max_bytes: int = 256 * 1024

    def to_wire(self) -> dict[str, Any]:
        return flat_dict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Limits:
        return cls(**known_fields(cls, data))


Header = tuple[str, str]


_H = TypeVar("_H", bound="_WithHeaders")


class _WithHeaders:
    """Wire form of a flat dataclass with a ``headers`` field of (name, value) pairs."""

    def to_wire(self) -> dict[str, Any]:
        d = flat_dict(self)
        d["headers"] = [list(h) for h in d["headers"]]
        return d

    @classmethod
    def from_wire(cls: type[_H], data: dict[str, Any]) -> _H:
        d = known_fields(cls, data)
        d["headers"] = tuple((str(k), str(v)) for k, v in d.get("headers") or ())
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class HttpRequest(_WithHeaders):
    """The request a component's ``wasi:http/incoming-handler`` gets: the path is the one
    under the function's mount (``/fn/NAME/x?y`` -> ``/x?y``)."""

    method: str = "GET"
    path_with_query: str = "/"
    scheme: str = "http"
    authority: str = "localhost"  # StarlingMonkey (componentize-js) needs one to make a URL
    headers: tuple[Header, ...] = ()
    body: bytes = b""


@dataclasses.dataclass(frozen=True)
class HttpResponse(_WithHeaders):
    """The response a component set, or why it set none (``error``: ``no_response`` when
    its handler returned without one, else the ``error-code`` case it set instead)."""

    status: int = 200
    headers: tuple[Header, ...] = ()
    body: bytes = b""
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What one call of a function gets: WASI args, env and stdin, plus limits; a
    component gets its HTTP request instead of stdin."""

    stdin: bytes = b""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    limits: Limits = Limits()
    request: HttpRequest | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "stdin": self.stdin,
            "args": list(self.args),
            "env": [list(p) for p in self.env],
            "limits": self.limits.to_wire(),
        }
        if self.request is not None:
            wire["request"] = self.request.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Invocation:
        request = data.get("request")
        return cls(
            stdin=wire_bytes(data.get("stdin", b"")),
            args=tuple(str(a) for a in data.get("args", ())),
            env=tuple((str(k), str(v)) for k, v in data.get("env", ())),
            limits=Limits.from_wire(data.get("limits", {})),
            request=HttpRequest.from_wire(request) if isinstance(request, dict) else None,
        )


@dataclasses.dataclass(frozen=True)
class InvocationResult:
    """How one call ended. ``exit_code`` is always set (see the EXIT_* constants)."""

    outcome: Outcome
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    duration_ms: float = 0.0
    fuel_used: int | None = None
    memory_bytes: int = 0  # linear memory size at the end of the call
    message: str = ""  # trap message or why the limit fired
    # wasmtime's trap kind when the run trapped, e.g. "unreachable", "out_of_fuel",
    # "interrupt", "memory_out_of_bounds" ("" otherwise); a code, never parse `message`
    trap_code: str = ""
    # A component's answer (stdout and stderr are then its logs); None for a module.
    response: HttpResponse | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_wire(self) -> dict[str, Any]:
        d = flat_dict(self)
        d["outcome"] = self.outcome.value
        if self.response is None:
            del d["response"]
        else:
            d["response"] = self.response.to_wire()
        return d

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> InvocationResult:
        d = known_fields(cls, data)
        d["outcome"] = Outcome(d["outcome"])
        response = d.get("response")
        d["response"] = HttpResponse.from_wire(response) if isinstance(response, dict) else None
        return cls(**d)

    def raise_for_outcome(self) -> InvocationResult:
        """Return self when the run finished normally, else raise its typed error."""
        from wasm_runtime import errors

        table: dict[Outcome, type[errors.InvocationFailed]] = {
            Outcome.TIMEOUT: errors.FunctionTimeout,
            Outcome.OUT_OF_MEMORY: errors.FunctionOOM,
            Outcome.TRAP: errors.FunctionTrap,
            Outcome.OUTPUT_TOO_LARGE: errors.OutputTooLarge,
        }
        if self.outcome is Outcome.OK:
            return self
        raise table[self.outcome](self)
