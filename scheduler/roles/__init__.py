"""The server roles, composed of the other subpackages: what every role shares for managing
functions (:mod:`~scheduler.roles.control`), a node's platform facade
(:mod:`~scheduler.roles.platform`: invoke through the pool, manage through the registry) and its
composition (:mod:`~scheduler.roles.node`) and membership (:mod:`~scheduler.roles.heartbeat`),
the cluster as a gateway sees it (:mod:`~scheduler.roles.cluster`), and the body of a gateway's
call to a node (:mod:`~scheduler.roles.nodewire`).

May import: every other subpackage and ``unikernel`` (the node builds its image and factory).
"""

from scheduler.roles.cluster import Cluster, NodeDirectory
from scheduler.roles.control import Control
from scheduler.roles.node import Node
from scheduler.roles.nodewire import CONTENT_TYPE, decode_invoke, encode_invoke
from scheduler.roles.platform import InvokeOutcome, Platform

__all__ = [
    "CONTENT_TYPE",
    "Cluster",
    "Control",
    "InvokeOutcome",
    "Node",
    "NodeDirectory",
    "Platform",
    "decode_invoke",
    "encode_invoke",
]
