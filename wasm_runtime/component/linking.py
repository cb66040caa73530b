"""Linking is data: which interfaces a component may import, and its linker built from them.

Every interface the host implements is an :class:`Interface` declared in the module of its
WIT package. A component's imports are sorted at deploy (:func:`sort_imports`):

- **granted**: implemented here (WASI 0.2.x, any patch version: wasmtime's linker matches
  a 0.2.9 import with the host's 0.2 definitions);
- **denied**: known WASI, Spin or draft interfaces this platform does not grant; they are
  linked, and calling one stops the call with a trap naming it, so a component that only
  imports them (every Spin or componentize-py build imports sockets) still runs;
- **unknown**: anything else; the deploy is refused, naming each.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component, ComponentInstanceType, FuncType, Linker

from wasm_runtime.component import fastpath  # noqa: F401 (wasmtime-py's slow paths, faster)
from wasm_runtime.component.call import Stop, current, current_call
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.values import Lower, lowerer

log = logging.getLogger(__name__)

# A host function: the call, the store, then the WIT arguments; returns the result's
# meaning (Ok/Err/Some/Case or a plain value), lowered to wasmtime-py's form by the linker.
HostFunc = Callable[..., Any]

HANDLER = "wasi:http/incoming-handler"
HANDLE = "handle"
GRANTED_VERSION = "0.2"
# Known interfaces a component may import but not use here (matched by prefix).
DENIED_PREFIXES = (
    "wasi:sockets/",
    "wasi:keyvalue/",
    "wasi:config/",
    "fermyon:spin/",
    "spin:",
)


@dataclasses.dataclass(frozen=True)
class Interface:
    """One WIT interface the host implements: its own resources and its functions, by the
    names the component model gives them (``[method]fields.append``, ``[static]...``)."""

    name: str  # unversioned, e.g. "wasi:io/streams"
    resources: Mapping[str, Kind] = dataclasses.field(default_factory=dict)
    functions: Mapping[str, HostFunc] = dataclasses.field(default_factory=dict)
    # The versions it serves: this, or any that starts with it and a dot ("0.2": 0.2.9,
    # 0.2.0-draft2); wasmtime's linker matches them with what is defined.
    version: str = GRANTED_VERSION


@dataclasses.dataclass(frozen=True)
class ComponentImports:
    """A component's imports, sorted (full versioned names)."""

    granted: tuple[str, ...]
    denied: tuple[str, ...]
    unknown: tuple[str, ...]


def split_version(name: str) -> tuple[str, str]:
    base, _, version = name.partition("@")
    return base, version


def _interfaces() -> dict[str, Interface]:
    """Every module's interfaces; one declared in parts (wasi:http/types: the incoming side
    in http, the outgoing side in http_out) is their union."""
    from wasm_runtime.component import (
        cli,
        clocks,
        config,
        filesystem,
        http,
        http_out,
        io,
        keyvalue,
        random,
    )

    found: dict[str, Interface] = {}
    for module in (io, clocks, random, cli, filesystem, http, http_out, keyvalue, config):
        for part in module.INTERFACES:
            whole = found.get(part.name)
            found[part.name] = (
                part
                if whole is None
                else Interface(
                    part.name,
                    {**whole.resources, **part.resources},
                    {**whole.functions, **part.functions},
                    part.version,
                )
            )
    return found


_INTERFACES: dict[str, Interface] | None = None


def interfaces() -> dict[str, Interface]:
    """Every interface the host grants, by unversioned name."""
    global _INTERFACES
    if _INTERFACES is None:
        _INTERFACES = _interfaces()
    return _INTERFACES


def _granted_version(version: str, served: str = GRANTED_VERSION) -> bool:
    return version == served or version.startswith(served + ".")


def _granted(name: str) -> Interface | None:
    base, version = split_version(name)
    iface = interfaces().get(base)
    if iface is None or not _granted_version(version, iface.version):
        return None
    return iface


def _denied(name: str) -> bool:
    return split_version(name)[0].startswith(DENIED_PREFIXES)


def sort_imports(names: list[str]) -> ComponentImports:
    granted, denied, unknown = [], [], []
    for name in sorted(names):
        if _granted(name) is not None:
            granted.append(name)
        elif _denied(name):
            denied.append(name)
        else:
            unknown.append(name)
    return ComponentImports(tuple(granted), tuple(denied), tuple(unknown))


def handler_export(engine: Engine, component: Component) -> str | None:
    """The name of the component's ``wasi:http/incoming-handler@0.2.x`` export, if any."""
    for name, ext in component.type.exports(engine).items():
        base, version = split_version(name)
        if base != HANDLER or not _granted_version(version):
            continue
        ty = ext.ty
        if isinstance(ty, ComponentInstanceType):
            handle = ty.exports(engine).get(HANDLE)
            if handle is not None and isinstance(handle.ty, FuncType):
                return name
    return None


def _host(where: str, impl: HostFunc, lower: Lower) -> Callable[..., Any]:
    def host(store: Any, *args: Any) -> Any:
        call = current()
        try:
            return lower(impl(call, store, *args))
        except WasmtimeError:
            raise
        except Exception as err:
            # A bug of ours. Raised as it is, wasmtime-py would keep it in one process-wide
            # slot that a call on another thread could pick up.
            log.exception("host function %s failed", where)
            call.stopped, call.reason = Stop.MISUSE, f"the host failed in {where}: {err!r}"
            raise WasmtimeError(call.reason) from None

    return host


def _refuse(where: str) -> Callable[..., Any]:
    def refuse(store: Any, *args: Any) -> Any:
        for arg in args:  # a borrowed handle left unused fails the call on its own
            drop = getattr(arg, "drop", None)
            if drop is not None:
                drop(store)
        current().stop(Stop.DENIED, f"the function called {where}, which unifaas does not grant")

    return refuse


def _dropped(store: Any, rep: int) -> None:
    call = current_call()
    if call is not None:  # wasmtime may run a destructor outside any call
        call.table.drop(rep)


def link(engine: Engine, component: Component) -> Linker:
    """A linker for ``component``: its granted imports defined, its denied ones refusing,
    anything left (resources of denied interfaces) trapping when used."""
    linker = Linker(engine)
    with linker.root() as root:
        for name, ext in component.type.imports(engine).items():
            ty = ext.ty
            if not isinstance(ty, ComponentInstanceType):
                continue
            members = ty.exports(engine)
            iface = _granted(name)
            with root.add_instance(name) as inst:
                if iface is None:
                    if _denied(name):
                        for fname, member in members.items():
                            if isinstance(member.ty, FuncType):
                                inst.add_func(fname, _refuse(f"{name}#{fname}"))
                    continue
                for rname, kind in iface.resources.items():
                    if rname in members:
                        inst.add_resource(rname, kind.resource_type, _dropped)
                for fname, impl in iface.functions.items():
                    found = members.get(fname)
                    if found is not None and isinstance(found.ty, FuncType):
                        where = f"{name}#{fname}"
                        inst.add_func(fname, _host(where, impl, lowerer(found.ty.result)))
    linker.define_unknown_imports_as_traps(component)
    return linker
