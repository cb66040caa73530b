"""What a function may reach through the wall, and the policy that decides it, on the host:
a call's session (:mod:`~scheduler.hostcalls.session`: one per call, its limits and
metrics), the function's key-value store (:mod:`~scheduler.hostcalls.kvstore`) and outbound
HTTP to allow-listed hosts (:mod:`~scheduler.hostcalls.outbound`).

May import: ``state`` and the shared modules.

Its modules are imported when one of their names is first used: checking an allow-list
entry at deploy (and so the CLI's settings) needs ``outbound`` alone, not Redis.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.hostcalls.kvstore import Quota
    from scheduler.hostcalls.outbound import Caps, parse_allow_list
    from scheduler.hostcalls.session import (
        LATENCY_BUCKETS,
        Capabilities,
        HostcallStats,
        HostSession,
    )

_HOMES = {
    "Quota": "kvstore",
    "Caps": "outbound",
    "parse_allow_list": "outbound",
    "LATENCY_BUCKETS": "session",
    "Capabilities": "session",
    "HostcallStats": "session",
    "HostSession": "session",
}
__all__ = [
    "LATENCY_BUCKETS",
    "Capabilities",
    "Caps",
    "HostSession",
    "HostcallStats",
    "Quota",
    "parse_allow_list",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
