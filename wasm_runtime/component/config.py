"""Configuration: ``wasi:config/store`` (draft 2024-09-27) and Spin's
``fermyon:spin/variables@2.0.0``, both reading the function's env and secrets.

A Spin variable ``api_key`` is looked up as itself, then as ``API_KEY`` (how a deploy's
``--env``/``--secret`` names usually read).
"""

from __future__ import annotations

from typing import Any

from wasm_runtime.component.call import Call
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Case, Err, Ok


def _lookup(call: Call, name: str) -> str | None:
    values = dict(call.env)
    return values.get(name, values.get(name.upper()))


def _get(call: Call, store: Any, key: str) -> Ok:
    return Ok(_lookup(call, key))


def _get_all(call: Call, store: Any) -> Ok:
    return Ok(list(call.env))


def _variable(call: Call, store: Any, name: str) -> Ok | Err:
    value = _lookup(call, name)
    return Ok(value) if value is not None else Err(Case("undefined", f"no variable {name!r}"))


INTERFACES = (
    Interface("wasi:config/store", {}, {"get": _get, "get-all": _get_all}),
    Interface("fermyon:spin/variables", {}, {"get": _variable}, version="2.0"),
)
