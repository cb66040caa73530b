"""The cluster as a gateway sees it: the live nodes (from their heartbeats in Redis) and
which of them a call goes to.

Placement, in order (:func:`choose`):

1. a node with a free slot on a bound VM of the function, the most free first;
2. else the node the function went to last (sticky, so the VMs it started stay warm),
   while that node has room for a VM or has just been given the call;
3. else the less loaded of two nodes picked at random among those with room
   (power of two choices), or of all nodes when none has room (the node queues).

A node drops out a little after its record expires (a few missed heartbeats) or at once
when this gateway fails to reach it; it comes back with its next heartbeat after that.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Sequence

from scheduler.errors import StateStoreError
from scheduler.model import FunctionRef, NodeRecord
from scheduler.pool.status import FunctionVMs
from scheduler.registry.registry import Registry
from scheduler.roles.control import Control
from scheduler.state.store import outage_backoff_s

log = logging.getLogger(__name__)

# How often a gateway re-reads the nodes' records.
REFRESH_S = 0.5
# How long a node whose record vanished is still used (see NodeDirectory.set_nodes).
LINGER_S = 3.0


def load_of(node: NodeRecord, local: int) -> int:
    """Calls on a node: what it said in its last beat plus what this gateway sent since."""
    return node.in_flight + local


def choose(
    nodes: Sequence[NodeRecord],
    function: str,
    *,
    sticky: str | None,
    local: dict[str, int],
    rng: random.Random,
) -> NodeRecord | None:
    """The node for a call of ``function`` among ``nodes`` (None: there is none)."""
    if not nodes:
        return None
    warm = [(n.warm_slots(function) - local.get(n.id, 0), n) for n in nodes]
    best_free, best = max(warm, key=lambda pair: pair[0])
    if best_free > 0:
        # Ties go to the sticky node, then the first by id: the same node stays warm.
        ties = [n for free, n in warm if free == best_free]
        return next((n for n in ties if n.id == sticky), best)
    with_room = [n for n in nodes if n.room > local.get(n.id, 0)]
    for n in nodes:
        if n.id == sticky and (n in with_room or local.get(n.id, 0) > 0):
            return n
    pool = with_room or list(nodes)
    pair = rng.sample(pool, 2) if len(pool) > 1 else pool
    # Equal loads: the first drawn, so they spread at random.
    return min(pair, key=lambda n: load_of(n, local.get(n.id, 0)))


class NodeDirectory:
    """The live nodes, refreshed from Redis, and the calls this gateway has on each."""

    def __init__(self, registry: Registry, rng: random.Random | None = None) -> None:
        self.registry = registry
        self._nodes: dict[str, NodeRecord] = {}
        self._down: dict[str, float] = {}  # node id -> seen_at of the record we gave up on
        self._sticky: dict[str, str] = {}  # function -> node id
        self._listed_at: dict[str, float] = {}  # node id -> when Redis last listed it
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()  # by node id
        self._rng = rng or random.Random()

    def alive(self) -> list[NodeRecord]:
        return [n for n in self._nodes.values() if n.id not in self._down]

    def known(self) -> list[tuple[NodeRecord, bool]]:
        """Every node with a live record, and whether this gateway places calls on it."""
        return [(n, n.id not in self._down) for n in self._nodes.values()]

    def set_nodes(self, nodes: Sequence[NodeRecord], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        listed = {n.id: n for n in nodes}
        for node_id in listed:
            self._listed_at[node_id] = now
        # A record that vanished lingers a little: after a Redis failover the records may
        # have expired while no beat could be written, and the nodes beat again within a
        # second. A node that is really gone is dropped by its first refused connection.
        for node_id, node in self._nodes.items():
            if node_id not in listed and now - self._listed_at.get(node_id, now) < LINGER_S:
                listed[node_id] = node
        for node_id in [i for i in self._listed_at if i not in listed]:
            del self._listed_at[node_id]
        self._nodes = listed
        for node_id, seen_at in list(self._down.items()):
            current = self._nodes.get(node_id)
            # A beat newer than the one we gave up on: it is back (or it never left).
            if current is None or current.seen_at > seen_at:
                del self._down[node_id]

    async def refresh(self) -> None:
        self.set_nodes(await self.registry.list_nodes())

    async def follow(self) -> None:
        """Refresh until cancelled; while Redis is away the last list stands."""
        failures = 0
        while True:
            try:
                await self.refresh()
                if failures:
                    log.warning("state store back: node list current again")
                failures = 0
                await asyncio.sleep(REFRESH_S)
            except StateStoreError as err:
                if failures == 0:
                    log.warning("state store unreachable (%s): keeping the last node list", err)
                await asyncio.sleep(outage_backoff_s(failures))
                failures += 1

    def choose(self, function: str, exclude: frozenset[str] = frozenset()) -> NodeRecord | None:
        nodes = [n for n in self.alive() if n.id not in exclude]
        node = choose(
            nodes,
            function,
            sticky=self._sticky.get(function),
            local=dict(self.in_flight),
            rng=self._rng,
        )
        if node is not None:
            self._sticky[function] = node.id
        return node

    def down(self, node: NodeRecord, why: str) -> None:
        """This gateway could not use ``node``: no calls go there until it beats again."""
        if node.id not in self._down:
            log.warning("node %s (%s) dropped: %s", node.id, node.url, why)
        self._down[node.id] = node.seen_at
        self.failures[node.id] += 1

    def vms_of(self, name: str | None = None) -> tuple[FunctionVMs, ...]:
        """A function's VMs (None: every function's) across the live nodes, per version,
        as their last beats said."""
        per_ref: dict[str, list[int]] = {}
        for node in self.alive():
            for w in node.warm:
                if name is None or w.name == name:
                    counts = per_ref.setdefault(w.ref, [0, 0, 0])
                    counts[0] += w.vms
                    counts[1] += w.in_flight
                    counts[2] += w.free_slots
        return tuple(
            FunctionVMs(FunctionRef.parse(ref), vms, in_flight, 0, free)
            for ref, (vms, in_flight, free) in sorted(per_ref.items())
        )


class Cluster(Control):
    """What a gateway manages with: the registry, and the nodes its calls go to."""

    def __init__(self, registry: Registry, gateway_id: str) -> None:
        super().__init__(registry, gateway_id)
        self.nodes = NodeDirectory(registry)

    def vms_of(self, name: str) -> tuple[FunctionVMs, ...]:
        return self.nodes.vms_of(name)
