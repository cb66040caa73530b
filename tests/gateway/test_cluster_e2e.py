"""A cluster of real processes on this machine: one redis-server on a loopback port, three
``unifaas node`` (each with its microVMs) and two ``unifaas gateway``, one token.

- kill -9 of a node's process group (the node and its QEMUs) under load through both
  gateways: every call answered (lost = 0), and the gateways drop the node in seconds;
- kill a gateway: the other serves;
- 200 async calls with a node killed midway (kill -9, its VMs too): each ends
  ``succeeded`` once, with its own response;
- the CLI's status through a gateway lists the nodes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtests.asynccampaign import async_campaign, busiest_consumer, running_calls_of
from loadtests.chaos import FUNCTION, children, qemu_children
from loadtests.cluster import (
    LocalCluster,
    deploy_echo_everywhere,
    local_cluster,
    node_kill_campaign,
)

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    extra = {
        "UNIFAAS_IDLE_TARGET": "0",
        "UNIFAAS_QUEUE_TIMEOUT_S": "60",
        # The campaign counts against the VMs it set up; the autoscaler would add more.
        "UNIFAAS_AUTOSCALE": "0",
        # A killed node's async calls are taken over after this (default 10 s).
        "UNIFAAS_ASYNC_CLAIM_IDLE_S": "3",
    }
    with local_cluster(tmp_path_factory.mktemp("cluster"), max_vms=2, extra_env=extra) as c:
        deploy_echo_everywhere(c)
        yield c
    # Every node, gateway and QEMU is gone with its group.
    for served in (*c.nodes, *c.gateways):
        assert served.proc.poll() is not None
        assert not qemu_children(served.proc.pid)


def test_the_gateways_see_every_node_and_the_cli_lists_them(cluster: LocalCluster) -> None:
    for gateway in range(2):
        nodes = cluster.live_nodes(gateway)
        assert len(nodes) == 3
        assert all(any(w["ref"] == f"{FUNCTION}@1" for w in n["warm"]) for n in nodes)
    out = cluster.gateways[1].cli("status")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert text.startswith("gateway ") and "nodes: 3" in text
    assert text.count(" up ") == 3
    status = json.loads(cluster.gateways[0].cli("status", "--json").stdout)
    assert status["role"] == "gateway" and "pool" not in status
    # Every node's own pool holds its warm VM (min_warm is kept per node), and no two
    # QEMUs of the host share their uid, though three nodes lease them from one range.
    uids = []
    for served in cluster.nodes:
        pids = qemu_children(served.proc.pid)
        assert len(pids) >= 1
        uids += [Path(f"/proc/{pid}").stat().st_uid for pid in pids]
    assert len(set(uids)) == len(uids) and 0 not in uids, uids


def test_killing_a_node_under_load_loses_no_call(cluster: LocalCluster) -> None:
    report = node_kill_campaign(
        cluster, clients=4, duration_s=14, kill_at_s=4, progress=lambda _: None
    )
    print(json.dumps(report.to_json()))
    assert report.sent > 20
    assert report.lost == 0, report.failed
    assert report.recovered_s < 10  # three missed beats, or the first refused connection
    # The survivors still serve through both gateways, and deploys still reach them.
    for served in cluster.gateways:
        r = httpx.post(f"{served.url}/fn/{FUNCTION}", content=b"after", timeout=60)
        assert r.status_code == 200 and r.content == b"after"
    metrics = httpx.get(f"{cluster.gateways[0].url}/metrics").text
    assert f'unifaas_node_up{{node="{report.killed}"}}' not in metrics or (
        f'unifaas_node_up{{node="{report.killed}"}} 0.0' in metrics
    )


def test_killing_a_gateway_leaves_the_other_serving(cluster: LocalCluster) -> None:
    doomed, other = cluster.gateways
    os.killpg(doomed.proc.pid, signal.SIGKILL)
    doomed.proc.wait()
    assert not children(doomed.proc.pid, b"")  # a gateway starts nothing of its own
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{doomed.url}/fn/{FUNCTION}", content=b"x", timeout=5)
    for i in range(10):
        body = f"still here {i}".encode()
        r = httpx.post(f"{other.url}/fn/{FUNCTION}", content=body, timeout=60)
        assert r.status_code == 200 and r.content == body


def test_async_calls_survive_a_node_killed_under_them(cluster: LocalCluster) -> None:
    urls = [g.url for g in cluster.gateways if g.proc.poll() is None]

    held: list[int] = []

    def kill_busiest() -> str:
        victim = busiest_consumer(cluster.redis_url)
        # Frozen first: a busy machine may let it finish what it held between the look and
        # the kill, so count what it still runs once it can no longer answer anything.
        cluster.kill_node(
            victim, while_frozen=lambda: held.append(running_calls_of(cluster.redis_url, victim))
        )
        return f"kill -9 node {victim}, which was running {held[0]} async calls"

    report = async_campaign(urls, cluster.token, kill_busiest, calls=200, progress=print)
    print(json.dumps(report.to_json()))
    assert report.accepted == report.sent == 200, report.refused
    assert report.lost == 0, report.ended_otherwise
    assert report.succeeded == 200 and report.recorded_twice == 0
    assert report.retried >= held[0]  # each call it died running was run again elsewhere
