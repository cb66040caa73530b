"""Key-value through the wall: ``wasi:keyvalue/store`` and ``atomics`` (0.2.0-draft2) and
Spin's ``fermyon:spin/key-value@2.0.0``, on the function's own store on the host.

Every operation is a hostcall (the ones a module's ``kv_*`` imports make): the host applies
the function's quotas and size limits, and writes count as effects. There is one store per
function, named ``default``; opening any other is ``no-such-store``. ``increment`` keeps
the value as decimal text, as ``kv_incr`` does.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import ResourceAny

from wasm_runtime.component.call import Call
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Case, Err, Ok, record
from wasm_runtime.hostcalls import HostAnswer, HostRequest, Status
from wasm_runtime.hostcalls import Kind as HostKind

STORE = "default"
NO_SUCH_STORE = Case("no-such-store")


class Bucket:
    """The function's store, as a component holds it."""


def _ask(call: Call, kind: HostKind, key: str = "", **args: Any) -> HostAnswer:
    return call.ask(HostRequest(kind, key=key.encode(), **args))


def _failed(answer: HostAnswer) -> Err:
    return Err(Case("other", f"{answer.status.name.lower()}: {answer.message}".rstrip(": ")))


def _open(call: Call, store: Any, label: str) -> Ok | Err:
    if label != STORE:
        return Err(NO_SUCH_STORE)
    return Ok(call.table.own(Kind.KV_STORE, Bucket()))


def _bucket(call: Call, store: Any, this: ResourceAny) -> None:
    call.table.get(store, this, Bucket)


def _get(call: Call, store: Any, this: ResourceAny, key: str) -> Ok | Err:
    _bucket(call, store, this)
    answer = _ask(call, HostKind.KV_GET, key)
    if answer.status is Status.NOT_FOUND:
        return Ok(None)
    return Ok(answer.value) if answer.status is Status.OK else _failed(answer)


def _set(call: Call, store: Any, this: ResourceAny, key: str, value: bytes) -> Ok | Err:
    _bucket(call, store, this)
    answer = _ask(call, HostKind.KV_SET, key, value=value)
    return Ok() if answer.status is Status.OK else _failed(answer)


def _delete(call: Call, store: Any, this: ResourceAny, key: str) -> Ok | Err:
    _bucket(call, store, this)
    answer = _ask(call, HostKind.KV_DELETE, key)
    return Ok() if answer.status in (Status.OK, Status.NOT_FOUND) else _failed(answer)


def _exists(call: Call, store: Any, this: ResourceAny, key: str) -> Ok | Err:
    got = _get(call, store, this, key)
    return Ok(got.value is not None) if isinstance(got, Ok) else got


def _keys(call: Call) -> Ok | Err:
    answer = _ask(call, HostKind.KV_LIST)
    if answer.status is not Status.OK:
        return _failed(answer)
    return Ok([key.decode(errors="replace") for key in answer.keys])


def _get_keys(call: Call, store: Any, this: ResourceAny) -> Ok | Err:
    _bucket(call, store, this)
    return _keys(call)


def _list_keys(call: Call, store: Any, this: ResourceAny, cursor: str | None) -> Ok | Err:
    _bucket(call, store, this)
    keys = _keys(call)
    if isinstance(keys, Err):
        return keys
    return Ok(record(keys=keys.value, cursor=None))  # every key in one answer


def _increment(call: Call, store: Any, bucket: ResourceAny, key: str, delta: int) -> Ok | Err:
    _bucket(call, store, bucket)
    answer = _ask(call, HostKind.KV_INCR, key, delta=delta)
    return Ok(answer.number) if answer.status is Status.OK else _failed(answer)


INTERFACES = (
    Interface(
        "wasi:keyvalue/store",
        {"bucket": Kind.KV_STORE},
        {
            "open": _open,
            "[method]bucket.get": _get,
            "[method]bucket.set": _set,
            "[method]bucket.delete": _delete,
            "[method]bucket.exists": _exists,
            "[method]bucket.list-keys": _list_keys,
        },
    ),
    Interface("wasi:keyvalue/atomics", {}, {"increment": _increment}),
    Interface(
        "fermyon:spin/key-value",
        {"store": Kind.KV_STORE},
        {
            "[static]store.open": _open,
            "[method]store.get": _get,
            "[method]store.set": _set,
            "[method]store.delete": _delete,
            "[method]store.exists": _exists,
            "[method]store.get-keys": _get_keys,
        },
        version="2.0",
    ),
)
