"""Results and options as the host functions mean them, lowered to the form wasmtime-py wants.

wasmtime-py passes a WIT ``variant``, ``option`` or ``result`` untagged (the bare payload,
``None`` for a case without one) unless two of its cases would be the same Python class;
then every case is a :class:`~wasmtime.component.Variant`. Which form a function's result
takes is a property of its type, so the host functions return :class:`Ok` or :class:`Err`
and :func:`lowerer` turns them into the right form once per function, at link time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from wasmtime.component import (
    ListType,
    OptionType,
    Record,
    ResultType,
    TupleType,
    ValType,
    Variant,
    VariantType,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Ok:
    value: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Err:
    value: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Some:
    """``some(value)`` where ``value`` may itself be None (an ``option<option<T>>``)."""

    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """A variant's case by name, with its payload (None for a case without one)."""

    name: str
    value: Any = None


Lower = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def lowerer(ty: ValType | None) -> Lower:
    """A function from the host's meaning of a value of ``ty`` to wasmtime-py's form."""
    if isinstance(ty, ResultType):
        return _result(ty)
    if isinstance(ty, OptionType):
        return _option(ty)
    if isinstance(ty, VariantType):
        return _variant(ty)
    if isinstance(ty, ListType) and not ty._is_bytes():
        each = lowerer(ty.element)
        return _same if each is _same else (lambda v: [each(x) for x in v])
    if isinstance(ty, TupleType):
        parts = [lowerer(t) for t in ty.elements]
        if all(p is _same for p in parts):
            return _same
        return lambda v: tuple(p(x) for p, x in zip(parts, v, strict=True))
    return _same


def _result(ty: ResultType) -> Lower:
    tagged = ty._tagged()
    ok, err = lowerer(ty.ok), lowerer(ty.err)

    def lower(v: Any) -> Any:
        if isinstance(v, Err):
            payload = err(v.value)
            return Variant("err", payload) if tagged else payload
        payload = ok(v.value if isinstance(v, Ok) else v)
        return Variant("ok", payload) if tagged else payload

    return lower


def _option(ty: OptionType) -> Lower:
    tagged = ty._tagged()
    inner = lowerer(ty.payload)

    def lower(v: Any) -> Any:
        if v is None:
            return Variant("none") if tagged else None
        payload = inner(v.value if isinstance(v, Some) else v)
        return Variant("some", payload) if tagged else payload

    return lower


def _variant(ty: VariantType) -> Lower:
    tagged = ty._tagged()
    cases = {name: lowerer(case) for name, case in ty.cases}

    def lower(v: Any) -> Any:
        if not isinstance(v, Case):
            return v
        payload = cases[v.name](v.value)
        if tagged:
            return Variant(v.name, payload) if v.value is not None else Variant(v.name)
        return payload

    return lower


def record(**fields: Any) -> Record:
    """A WIT record for the guest: its fields by keyword, ``_`` for the ``-`` WIT names use
    (``link_count`` is ``link-count``); wasmtime-py reads them with getattr."""
    made = Record()
    for name, value in fields.items():
        setattr(made, name.replace("_", "-"), value)
    return made


def case_of(value: Any) -> tuple[str, Any]:
    """A variant argument from the guest as (case, payload), tagged or not."""
    if isinstance(value, Variant):
        return value.tag, value.payload
    return "", value
