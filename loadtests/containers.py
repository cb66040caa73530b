"""The cluster in real containers (deploy/compose/compose.yaml on the image), seen as the
campaigns see the process form: gateways to call, nodes listed through them, and a node
killed by ``docker kill`` of its container (the node, its QEMUs, everything in it).

Ports are free loopback ports picked per run and the compose project is unique, so a run
touches nothing it did not start; the stack removes its containers by id on every way out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from container.stack import ComposeStack, StackPorts
from loadtests.cluster import ClusterView
from loadtests.errors import BenchError, LaunchError
from loadtests.launch import free_port

START_TIMEOUT_S = 120.0
KILL_WAIT_S = 30.0


class ContainerCluster(ClusterView):
    def __init__(self, stack: ComposeStack, token: str) -> None:
        self.stack, self.token = stack, token
        self.killed: list[str] = []  # services killed, in order

    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.stack.ports.gateways]

    def node_service(self, node_id: str) -> str:
        for node in self.live_nodes():
            if node["id"] == node_id:
                port = urlsplit(str(node["url"])).port
                if port is None:
                    raise BenchError(f"node {node_id} advertises {node['url']}, with no port")
                return self.stack.ports.service_of_port(port)
        raise BenchError(f"no live node {node_id}")

    def kill_node(self, node_id: str) -> None:
        service = self.node_service(node_id)
        self.stack.kill(service)
        deadline = time.monotonic() + KILL_WAIT_S
        while self.stack.running(service):
            if time.monotonic() > deadline:
                raise BenchError(f"{service}'s container still runs {KILL_WAIT_S:g} s after kill")
            time.sleep(0.1)
        self.killed.append(service)

    def wait_gateways(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        for url in self.gateway_urls():
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LaunchError(
                        f"{url} did not answer /healthz in {timeout_s:g} s; its log:\n"
                        + self.stack.logs(self.stack.ports.service_of_port(_port(url)))
                    )
                time.sleep(0.2)


def _port(url: str) -> int:
    return int(urlsplit(url).port or 0)


def free_ports() -> StackPorts:
    picked: set[int] = set()
    while len(picked) < 6:
        picked.add(free_port())
    redis, n1, n2, n3, g1, g2 = sorted(picked)
    return StackPorts(redis, (n1, n2, n3), (g1, g2))


@contextlib.contextmanager
def container_cluster(image: str, *, kvm: bool | None = None) -> Iterator[ContainerCluster]:
    """The compose file's Redis, three nodes and two gateways, on free ports, healthy, and
    every gateway listing the three nodes; removed on the way out."""
    token = secrets.token_urlsafe(24)
    project = f"unifaas-{os.getpid()}-{secrets.token_hex(3)}"
    with ComposeStack(project, free_ports(), image=image, token=token, kvm=kvm) as stack:
        cluster = ContainerCluster(stack, token)
        cluster.wait_gateways()
        for gateway in range(len(cluster.gateway_urls())):
            cluster.wait_nodes(3, timeout_s=START_TIMEOUT_S, gateway=gateway)
        yield cluster
