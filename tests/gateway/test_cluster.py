"""A gateway over nodes, in one process: each node is a platform with the in-process sandbox
served by a real uvicorn socket, the gateway's app is driven over ASGI, and they meet in the
test's real Redis. The same with real processes and microVMs is test_cluster_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from gateway.app import create_app
from gateway.relay import NODE_HEADER, Relay
from gateway.settings import GatewaySettings
from loadtests.launch import free_port
from scheduler.model import NodeRecord, WarmVersion
from scheduler.pool.pool import Pool
from scheduler.registry.registry import Registry
from scheduler.roles.cluster import Cluster
from scheduler.roles.heartbeat import Heartbeat
from scheduler.roles.platform import Platform
from scheduler.settings import PoolSettings
from tests.conftest import wasm
from tests.gateway.conftest import AUTH, TOKEN, InProcessFactory


@dataclass
class LocalNode:
    platform: Platform
    heartbeat: Heartbeat
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def id(self) -> str:
        return self.platform.node_id

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def _serve(app: object, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
        await asyncio.sleep(0.01)
    return server, task


@pytest.fixture
async def start_node(redis: aioredis.Redis) -> AsyncIterator[Callable[..., Awaitable[LocalNode]]]:
    nodes: list[LocalNode] = []
    stack = contextlib.AsyncExitStack()

    async def start(node_id: str, *, token: str = TOKEN, max_vms: int = 2) -> LocalNode:
        pool = Pool(InProcessFactory(), PoolSettings(max_vms=max_vms, idle_target=0))
        platform = Platform(Registry(redis), pool, node_id, autoscale=False)
        await pool.start()
        await platform.start()
        stack.push_async_callback(platform.close)
        port = free_port()
        app = create_app(platform, token, GatewaySettings(port=port))
        server, task = await _serve(app, port)
        heartbeat = Heartbeat(platform, f"http://127.0.0.1:{port}", interval_s=60)
        await heartbeat.beat()
        node = LocalNode(platform, heartbeat, server, task)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            if not node.task.done():
                await node.stop()
        await stack.aclose()


@dataclass
class Gateway:
    client: httpx.AsyncClient
    cluster: Cluster
    relay: Relay

    async def refresh(self) -> None:
        await self.cluster.nodes.refresh()

    async def call(self, name: str, body: bytes = b"") -> httpx.Response:
        return await self.client.post(f"/fn/{name}", content=body)


@pytest.fixture
async def gateway(redis: aioredis.Redis) -> AsyncIterator[Gateway]:
    cluster = Cluster(Registry(redis), "gw-test")
    relay = Relay(cluster.nodes, TOKEN)
    app = create_app(cluster, TOKEN, GatewaySettings(), relay)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            yield Gateway(c, cluster, relay)
    finally:
        await relay.close()


async def deploy(gw: Gateway, name: str, module: str, **config: object) -> None:
    r = await gw.client.post(
        f"/v1/functions/{name}",
        headers=AUTH,
        files={"module": (f"{module}.wasm", wasm(module))},
        data={"config": json.dumps({"public": True, **config})},
    )
    assert r.status_code == 201, r.text


async def beat_all(gw: Gateway, *nodes: LocalNode) -> None:
    for node in nodes:
        await node.heartbeat.beat()
    await gw.refresh()


async def test_calls_go_to_a_node_and_stay_on_the_warm_one(
    gateway: Gateway, start_node: Callable[..., Awaitable[LocalNode]]
) -> None:
    a, b = await start_node("node-a"), await start_node("node-b")
    await deploy(gateway, "echo", "echo")
    await gateway.refresh()
    first = await gateway.call("echo", b"hi")
    assert first.status_code == 200 and first.content == b"hi"
    served = first.headers[NODE_HEADER]
    assert served in (a.id, b.id)
    await beat_all(gateway, a, b)  # the node now says it holds a warm echo
    for _ in range(5):
        r = await gateway.call("echo", b"again")
        assert r.headers[NODE_HEADER] == served
        assert r.headers["X-Start"] == "warm"
    nodes = (await gateway.client.get("/v1/nodes", headers=AUTH)).json()
    assert {n["id"] for n in nodes} == {a.id, b.id}
    warm = next(n for n in nodes if n["id"] == served)
    assert warm["alive"] and [w["ref"] for w in warm["warm"]] == ["echo@1"]
    status = (await gateway.client.get("/v1/status", headers=AUTH)).json()
    assert status["role"] == "gateway" and len(status["nodes"]) == 2
    dashboard = (await gateway.client.get("/dashboard/data")).json()
    assert [f["key"] for f in dashboard["functions"]] == ["echo@1"]
    assert dashboard["pool"]["bound"] == 1
    described = (await gateway.client.get("/v1/functions/echo", headers=AUTH)).json()
    assert described["warm_vms"]["echo@1"]["vms"] == 1


async def test_a_node_that_cannot_be_reached_is_dropped_and_the_call_served_elsewhere(
    gateway: Gateway, start_node: Callable[..., Awaitable[LocalNode]]
) -> None:
    a, b = await start_node("node-a"), await start_node("node-b")
    await deploy(gateway, "echo", "echo")
    await gateway.refresh()
    served = (await gateway.call("echo", b"x")).headers[NODE_HEADER]
    gone, other = (a, b) if served == a.id else (b, a)
    await beat_all(gateway, a, b)
    await gone.stop()  # its record stays until it expires: the gateway finds out itself
    r = await gateway.call("echo", b"still")
    assert r.status_code == 200 and r.content == b"still"
    assert r.headers[NODE_HEADER] == other.id and r.headers["X-Retries"] == "0"
    nodes = {n["id"]: n for n in (await gateway.client.get("/v1/nodes", headers=AUTH)).json()}
    assert not nodes[gone.id]["alive"] and nodes[other.id]["alive"]
    metrics = (await gateway.client.get("/metrics")).text
    assert f'unifaas_node_dropped_total{{node="{gone.id}"}} 1.0' in metrics
    assert f'unifaas_node_up{{node="{gone.id}"}} 0.0' in metrics


async def test_a_node_with_another_token_is_not_used(
    gateway: Gateway, start_node: Callable[..., Awaitable[LocalNode]]
) -> None:
    stranger = await start_node("node-x", token="another-token-entirely")
    await deploy(gateway, "echo", "echo")
    await gateway.refresh()
    r = await gateway.call("echo", b"x")
    assert r.status_code == 503 and r.json()["error"]["kind"] == "no_node"
    assert r.headers["Retry-After"] == "1"
    friend = await start_node("node-y")
    await beat_all(gateway, stranger, friend)
    r = await gateway.call("echo", b"y")
    assert r.status_code == 200 and r.headers[NODE_HEADER] == friend.id


async def _broken_node(redis: aioredis.Redis, node_id: str) -> tuple[asyncio.Server, int]:
    """A node that takes the call and drops the connection without an answer, as a node
    killed under a call does; it says it holds warm echo VMs, so it is chosen first."""
    broken = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal broken
        await reader.readuntil(b"\r\n\r\n")
        broken += 1
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    record = NodeRecord(
        node_id, "h", 1, f"http://127.0.0.1:{port}", 0.0, 1e12, 1, 4, 0, 4, 0,
        (WarmVersion("echo@1", 1, 0, 100),),
    )  # fmt: skip
    await Registry(redis).register_node(record, ttl_s=60)
    return server, port


async def test_a_call_whose_node_breaks_is_run_again_once_on_another(
    gateway: Gateway, start_node: Callable[..., Awaitable[LocalNode]], redis: aioredis.Redis
) -> None:
    good = await start_node("node-good")
    await deploy(gateway, "echo", "echo")
    server, _ = await _broken_node(redis, "node-broken")
    async with server:
        await gateway.refresh()
        r = await gateway.call("echo", b"once more")
        assert r.status_code == 200 and r.content == b"once more"
        assert r.headers[NODE_HEADER] == good.id and r.headers["X-Retries"] == "1"
    assert "unifaas_relay_reruns_total 1.0" in (await gateway.client.get("/metrics")).text


async def test_a_call_lost_twice_is_sandbox_lost(gateway: Gateway, redis: aioredis.Redis) -> None:
    first, _ = await _broken_node(redis, "node-b1")
    second, _ = await _broken_node(redis, "node-b2")
    async with first, second:
        await gateway.refresh()
        r = await gateway.call("echo", b"x")
    assert r.status_code == 503
    assert r.json()["error"]["kind"] == "sandbox_lost" and r.headers["X-Retries"] == "1"


async def test_changes_made_through_a_gateway_reach_the_nodes(
    gateway: Gateway, start_node: Callable[..., Awaitable[LocalNode]]
) -> None:
    node = await start_node("node-a")
    await deploy(gateway, "echo", "echo")
    await gateway.refresh()
    assert (await gateway.call("echo", b"1")).headers["X-Function-Version"] == "1"
    await deploy(gateway, "echo", "hello")  # version 2, told to the node by notification
    for _ in range(100):  # the node drains version 1 when it hears
        if [str(f.ref) for f in node.platform.pool.status().functions] != ["echo@1"]:
            break
        await asyncio.sleep(0.02)
    r = await gateway.call("echo")
    assert r.headers["X-Function-Version"] == "2" and b"hello" in r.content.lower()
    assert await gateway.client.delete("/v1/functions/echo", headers=AUTH)
    for _ in range(100):
        if not node.platform.pool.status().of("echo"):
            break
        await asyncio.sleep(0.02)
    assert node.platform.pool.status().of("echo") == ()
    assert (await gateway.call("echo")).status_code == 404


async def test_no_node_at_all_is_503(gateway: Gateway) -> None:
    await gateway.refresh()
    r = await gateway.call("echo")
    assert r.status_code == 503 and r.json()["error"]["kind"] == "no_node"
