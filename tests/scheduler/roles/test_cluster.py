"""Placement across nodes (a pure function) and the node directory's liveness rules."""

from __future__ import annotations

import random

import pytest

from scheduler.model import NodeRecord, WarmVersion
from scheduler.roles.cluster import NodeDirectory, choose


def node(
    node_id: str,
    *,
    room: int = 2,
    in_flight: int = 0,
    warm: dict[str, int] | None = None,
    seen_at: float = 1.0,
) -> NodeRecord:
    versions = tuple(WarmVersion(ref, 1, 0, free) for ref, free in (warm or {}).items())
    return NodeRecord(
        node_id, "h", 1, f"http://{node_id}", 0.0, seen_at, 1, 8, 0, room, in_flight, versions
    )


def pick(nodes: list[NodeRecord], *, sticky: str | None = None, **local: int) -> str | None:
    chosen = choose(nodes, "f", sticky=sticky, local=local, rng=random.Random(1))
    return None if chosen is None else chosen.id


def test_a_warm_node_with_free_slots_comes_first() -> None:
    nodes = [node("a", in_flight=0), node("b", in_flight=9, warm={"f@1": 2, "g@1": 9})]
    assert pick(nodes) == "b"
    # ... the one with the most free slots, counting the calls this gateway sent since.
    nodes.append(node("c", warm={"f@2": 3}))
    assert pick(nodes) == "c"
    assert pick(nodes, c=2) == "b"
    # Equal: the sticky one.
    assert pick([node("x", warm={"f@1": 1}), node("y", warm={"f@1": 1})], sticky="y") == "y"


def test_else_the_sticky_node_while_it_has_room_or_our_calls() -> None:
    nodes = [node("a", in_flight=5), node("b", in_flight=0)]
    assert pick(nodes, sticky="a") == "a"
    full = [node("a", room=0, in_flight=5), node("b", in_flight=0)]
    assert pick(full, sticky="a") == "b"
    assert pick(full, sticky="a", a=1) == "a"  # its VM is booting for our call


def test_else_the_less_loaded_of_two_with_room() -> None:
    nodes = [node("a", in_flight=3), node("b", in_flight=1), node("c", room=0)]
    assert pick(nodes) == "b"
    assert pick(nodes, b=4) == "a"
    # None has room: the least loaded of two anyway (it queues there).
    assert pick([node("a", room=0, in_flight=2), node("b", room=0, in_flight=1)]) == "b"
    assert pick([]) is None
    counts = {"a": 0, "b": 0, "c": 0}
    rng = random.Random(7)
    spread = [node("a"), node("b"), node("c")]
    for _ in range(300):
        chosen = choose(spread, "f", sticky=None, local={}, rng=rng)
        assert chosen is not None
        counts[chosen.id] += 1
    assert min(counts.values()) > 50  # equal loads: spread at random


@pytest.mark.parametrize("beat_again", [True, False])
def test_a_dropped_node_comes_back_with_its_next_heartbeat(beat_again: bool) -> None:
    directory = NodeDirectory(registry=None, rng=random.Random(1))  # type: ignore[arg-type]
    directory.set_nodes([node("a", seen_at=1.0), node("b", seen_at=1.0)], now=1.0)
    directory.down(directory.alive()[0], "test")
    assert [n.id for n in directory.alive()] == ["b"]
    assert directory.choose("f", exclude=frozenset({"b"})) is None
    directory.set_nodes([node("a", seen_at=2.0 if beat_again else 1.0), node("b")], now=2.0)
    assert [n.id for n in directory.alive()] == (["a", "b"] if beat_again else ["b"])
    directory.set_nodes([node("b")], now=100.0)  # a's record expired: forgotten
    directory.set_nodes([node("a", seen_at=1.0), node("b")], now=100.0)
    assert [n.id for n in directory.alive()] == ["a", "b"]


def ids(directory: NodeDirectory) -> list[str]:
    return sorted(n.id for n in directory.alive())


def test_a_vanished_record_lingers_before_the_node_is_forgotten() -> None:
    directory = NodeDirectory(registry=None)  # type: ignore[arg-type]
    directory.set_nodes([node("a"), node("b")], now=10.0)
    directory.set_nodes([node("b")], now=12.0)  # e.g. expired during a Redis failover
    assert ids(directory) == ["a", "b"]
    directory.set_nodes([node("b")], now=13.5)
    assert ids(directory) == ["b"]
    directory.set_nodes([node("a"), node("b")], now=14.0)  # it beats again
    assert ids(directory) == ["a", "b"]
