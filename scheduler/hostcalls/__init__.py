"""What a function may reach through the wall, and the policy that decides it, on the host:
a call's session (:mod:`~scheduler.hostcalls.session`: one per call, its limits and
metrics), the function's key-value store (:mod:`~scheduler.hostcalls.kvstore`) and outbound
HTTP to allow-listed hosts (:mod:`~scheduler.hostcalls.outbound`).

May import: ``state`` and the shared modules.
"""

from scheduler.hostcalls.kvstore import Quota
from scheduler.hostcalls.outbound import Caps, parse_allow_list
from scheduler.hostcalls.session import LATENCY_BUCKETS, Capabilities, HostcallStats, HostSession

__all__ = [
    "LATENCY_BUCKETS",
    "Capabilities",
    "Caps",
    "HostSession",
    "HostcallStats",
    "Quota",
    "parse_allow_list",
]
