"""``wasi:filesystem``: the preopens a component sees (none yet).

``wasi:filesystem/types`` is denied (see :mod:`.linking`): a component that lists the
preopens gets none, and one that calls into a descriptor stops with a trap naming it.
"""

from __future__ import annotations

from typing import Any

from wasm_runtime.component.call import Call
from wasm_runtime.component.linking import Interface


def _directories(call: Call, store: Any) -> list[Any]:
    return []


INTERFACES = (Interface("wasi:filesystem/preopens", {}, {"get-directories": _directories}),)
