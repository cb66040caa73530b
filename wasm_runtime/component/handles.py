"""Handles of one call: the host objects behind the resources its component holds.

A resource the host hands to a component is ``(rep, type id)``; ``rep`` keys this table.
wasmtime runs a resource's destructor only when the component drops its handle, never
when the Store goes, so the table belongs to one call and is thrown away with it.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any, TypeVar

from wasmtime import WasmtimeError
from wasmtime.component import ResourceAny, ResourceHost, ResourceType

T = TypeVar("T")

# A call may hold at most this many host objects at once: a component that makes fields
# or pollables in a loop traps instead of growing the guest agent without bound.
MAX_HANDLES = 100_000


class Kind(enum.IntEnum):
    """Every resource type the host defines; the value is its wasmtime host type id."""

    POLLABLE = 0x7501
    ERROR = 0x7502
    INPUT_STREAM = 0x7503
    OUTPUT_STREAM = 0x7504
    FIELDS = 0x7505
    INCOMING_REQUEST = 0x7506
    OUTGOING_REQUEST = 0x7507
    REQUEST_OPTIONS = 0x7508
    RESPONSE_OUTPARAM = 0x7509
    INCOMING_RESPONSE = 0x750A
    INCOMING_BODY = 0x750B
    FUTURE_TRAILERS = 0x750C
    OUTGOING_RESPONSE = 0x750D
    OUTGOING_BODY = 0x750E
    FUTURE_INCOMING_RESPONSE = 0x750F
    TERMINAL_INPUT = 0x7510
    TERMINAL_OUTPUT = 0x7511
    DESCRIPTOR = 0x7512
    DIRECTORY_ENTRY_STREAM = 0x7513
    KV_STORE = 0x7514

    @property
    def resource_type(self) -> ResourceType:
        return ResourceType.host(int(self))


class HandleTable:
    """Host objects by rep, for one call."""

    def __init__(self, max_handles: int = MAX_HANDLES) -> None:
        self._objects: dict[int, Any] = {}
        self._reps = itertools.count(1)
        self._max = max_handles

    def __len__(self) -> int:
        return len(self._objects)

    def own(self, kind: Kind, obj: Any) -> ResourceHost:
        """A new handle to ``obj`` for the component to own."""
        if len(self._objects) >= self._max:
            raise WasmtimeError(f"the call holds {self._max} resources: no more are given")
        rep = next(self._reps)
        self._objects[rep] = obj
        return ResourceHost.own(rep, int(kind))

    def get(self, store: Any, handle: ResourceAny, cls: type[T]) -> T:
        """The object behind a borrowed handle (the handle is used up, as wasmtime wants)."""
        return self._checked(handle.to_host(store).rep, cls)

    def take(self, store: Any, handle: ResourceAny, cls: type[T]) -> T:
        """The object behind an owned handle given back to the host: it leaves the table."""
        rep = handle.to_host(store).rep
        obj = self._checked(rep, cls)
        del self._objects[rep]
        return obj

    def _checked(self, rep: int, cls: type[T]) -> T:
        obj = self._objects.get(rep)
        if not isinstance(obj, cls):
            raise WasmtimeError(f"resource handle {rep} is not a live {cls.__name__}")
        return obj

    def drop(self, rep: int) -> None:
        """The component dropped its handle (the resource's destructor)."""
        _close(self._objects.pop(rep, None))

    def close(self) -> None:
        """The call is over: close what its handles hold (files' fds)."""
        objects, self._objects = self._objects, {}
        for obj in objects.values():
            _close(obj)


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if close is not None:
        close()
