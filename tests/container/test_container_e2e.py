"""The platform as a container image, end to end: the image built from this checkout (cached
by content), its metadata as the spec says, and the compose file's cluster in real
containers (Redis, three nodes, two gateways): a deploy through one gateway, calls through
both, and ``docker kill`` of the node container holding the most calls, under load, with
no call lost. Everything started is removed by id on the way out, failures included.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from container.build import BuildResult, build
from container.docker import Docker
from container.spec import LATEST, SPEC, UNPRIVILEGED_UID
from container.stack import NODES
from loadtests.chaos import FUNCTION, Report, load
from loadtests.cluster import deploy_echo_everywhere, node_kill_campaign
from loadtests.containers import ContainerCluster, container_cluster
from tests.manifests import OTHER_PROGRAMS, containers, image_mismatches

pytestmark = [pytest.mark.vm, pytest.mark.container]
ROOT = Path(__file__).resolve().parent.parent.parent
STOP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[Docker]:
    """The Docker daemon that answers; one this fixture starts (scripts/dockerd.sh) it stops."""
    docker = Docker()
    started = not docker.answers()
    if started:
        subprocess.run(["bash", str(ROOT / "scripts" / "dockerd.sh"), "start"], check=True)
    try:
        yield docker
    finally:
        if started:
            subprocess.run(["bash", str(ROOT / "scripts" / "dockerd.sh"), "stop"], check=False)


@pytest.fixture(scope="module")
def image(docker_daemon: Docker) -> BuildResult:
    result = build(progress=print)
    print(json.dumps({"tag": result.tag, "size_mb": round(result.size_bytes / 1e6),
                      "seconds": round(result.seconds, 1), "cached": result.cached,
                      "steps": result.steps}))  # fmt: skip
    return result


@pytest.fixture(scope="module")
def cluster(image: BuildResult, docker_daemon: Docker) -> Iterator[ContainerCluster]:
    with container_cluster(image.tag) as c:
        project = c.stack.project
        ids = dict(c.stack.ids)
        deploy_echo_everywhere(c)
        yield c
    # Every container it started is gone, and nothing of its project is left.
    left = docker_daemon.run("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
    assert left.split() == [], ids


def test_the_image_is_what_its_spec_says(image: BuildResult, docker_daemon: Docker) -> None:
    inspected = docker_daemon.inspect_image(image.tag)
    assert inspected is not None
    assert inspected.differences(SPEC) == []
    assert inspected.labels["dev.unifaas.content-key"] == image.key
    # The Kubernetes manifests use it as it is: checked against its own metadata here, and
    # the programs they name are in it.
    for name, container in containers():
        assert image_mismatches(container, inspected.as_spec()) == [], name
    for program in OTHER_PROGRAMS.values():
        docker_daemon.run("run", "--rm", "--entrypoint", program[0], image.tag, "--version")
    latest = docker_daemon.inspect_image(LATEST)
    assert latest is not None and latest.labels == inspected.labels
    # A second build of the same inputs finds it.
    again = build(progress=lambda _: None)
    assert again.cached and again.tag == image.tag


def test_the_image_runs_each_role_with_what_it_needs(
    cluster: ContainerCluster, docker_daemon: Docker
) -> None:
    stack = cluster.stack
    gateway = json.loads(docker_daemon.run("inspect", stack.ids["gateway1"]))[0]
    assert gateway["Config"]["User"] == f"{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}"
    assert gateway["HostConfig"]["ReadonlyRootfs"] is True
    assert gateway["HostConfig"]["CapDrop"] == ["ALL"]
    node = json.loads(docker_daemon.run("inspect", stack.ids["node1"]))[0]
    assert node["HostConfig"]["ReadonlyRootfs"] is False
    # The node says at start-up how its VMs are confined, and what it could not get.
    log = stack.logs("node1", tail=200)
    assert "confinement:" in log and "user a uid and gid per VM" in log, log
    # Its QEMUs run under ids of their own, distinct across the three node containers.
    uids = []
    for service in ("node1", "node2", "node3"):
        top = docker_daemon.run("top", stack.ids[service], "-eo", "pid,uid,comm")
        uids += [int(line.split()[1]) for line in top.splitlines()[1:] if "qemu" in line]
    assert uids and len(set(uids)) == len(uids) and 0 not in uids, uids


def test_killing_a_node_container_under_load_loses_no_call(cluster: ContainerCluster) -> None:
    report = node_kill_campaign(
        cluster, clients=4, duration_s=14, kill_at_s=4, progress=lambda _: None
    )
    print(json.dumps(report.to_json()))
    assert report.sent > 20
    assert report.lost == 0, report.failed
    assert len(cluster.killed) == 1
    assert not cluster.stack.running(cluster.killed[0])
    # The survivors still serve through both gateways.
    for url in cluster.gateway_urls():
        r = httpx.post(f"{url}/fn/{FUNCTION}", content=b"after", timeout=60)
        assert r.status_code == 200 and r.content == b"after"


def test_sigterm_drains_a_node_and_a_gateway_container(cluster: ContainerCluster) -> None:
    """``docker stop`` (SIGTERM through tini) under load through the other gateway: the
    node drains and leaves, the gateway stops, both exit 0 long before SIGKILL."""
    stack = cluster.stack
    node = next(s for s in NODES if s not in cluster.killed)
    nodes_before = len(cluster.live_nodes())
    report = Report(clients=2, duration_s=0)
    with load(cluster.gateway_urls()[:1], cluster.token, 2) as tally:
        time.sleep(2)
        tally.fault()
        for service in (node, "gateway2"):
            started = time.monotonic()
            stack.stop(service, timeout_s=STOP_TIMEOUT_S)
            assert time.monotonic() - started < STOP_TIMEOUT_S / 2, service
            assert stack.exit_code(service) == 0, stack.logs(service)
        cluster.wait_nodes(nodes_before - 1, timeout_s=30)
        time.sleep(2)
    tally.fill(report)
    print(json.dumps(report.to_json()))
    assert report.sent > 10
    assert report.lost == 0, report.failed
    assert "unifaas: stopping" in stack.logs("gateway2")
