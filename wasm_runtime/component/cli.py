"""``wasi:cli``: the function's environment and arguments, ``exit``, and stdio.

stdin is empty (the request body comes through ``wasi:http``); stdout and stderr are the
call's logs, each under its cap. There is no terminal.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import ResourceHost

from wasm_runtime.component.call import Call, Stop
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.io import InputStream, OutputStream
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import case_of


def _environment(call: Call, store: Any) -> list[tuple[str, str]]:
    return list(call.env)


def _arguments(call: Call, store: Any) -> list[str]:
    return [call.name, *call.args]


def _cwd(call: Call, store: Any) -> None:
    return None


def _exit(call: Call, store: Any, status: Any) -> None:
    tag, _ = case_of(status)
    call.exit_code = 0 if tag == "ok" else 1
    call.stop(Stop.EXIT, f"exit({call.exit_code})")


def _stdin(call: Call, store: Any) -> ResourceHost:
    return call.table.own(Kind.INPUT_STREAM, InputStream(b""))


def _stdout(call: Call, store: Any) -> ResourceHost:
    return call.table.own(Kind.OUTPUT_STREAM, OutputStream(call.stdout))


def _stderr(call: Call, store: Any) -> ResourceHost:
    return call.table.own(Kind.OUTPUT_STREAM, OutputStream(call.stderr))


def _no_terminal(call: Call, store: Any) -> None:
    return None


INTERFACES = (
    Interface(
        "wasi:cli/environment",
        {},
        {"get-environment": _environment, "get-arguments": _arguments, "initial-cwd": _cwd},
    ),
    Interface("wasi:cli/exit", {}, {"exit": _exit}),
    Interface("wasi:cli/stdin", {}, {"get-stdin": _stdin}),
    Interface("wasi:cli/stdout", {}, {"get-stdout": _stdout}),
    Interface("wasi:cli/stderr", {}, {"get-stderr": _stderr}),
    Interface("wasi:cli/terminal-input", {"terminal-input": Kind.TERMINAL_INPUT}, {}),
    Interface("wasi:cli/terminal-output", {"terminal-output": Kind.TERMINAL_OUTPUT}, {}),
    Interface("wasi:cli/terminal-stdin", {}, {"get-terminal-stdin": _no_terminal}),
    Interface("wasi:cli/terminal-stdout", {}, {"get-terminal-stdout": _no_terminal}),
    Interface("wasi:cli/terminal-stderr", {}, {"get-terminal-stderr": _no_terminal}),
)
