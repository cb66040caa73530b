"""Async calls through the app (in-process, fake sandbox running real wasmtime) and a node's worker
on a real redis-server: 202 and Location, the status and the response kept, errors before
queueing, dead-letters, callbacks to a real socket. The same across real nodes and VMs,
with a node killed under them, is in test_cluster_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.asyncrun import AppRunner
from gateway.metrics.telemetry import Telemetry
from gateway.routers.invoke import prefers_async
from gateway.settings import GatewaySettings
from loadtests.launch import free_port
from scheduler.asyncq.worker import AsyncWorker
from scheduler.pool.pool import Pool
from scheduler.registry.registry import Registry
from scheduler.roles.platform import Platform
from scheduler.settings import AsyncSettings, PoolSettings
from scheduler.state import keys
from tests.gateway.conftest import AUTH, TOKEN, InProcessFactory, deploy

SETTINGS = AsyncSettings(retry_backoff_s=0.05, claim_idle_s=1.0, callback_hosts="127.0.0.1")


@dataclass
class AsyncApp:
    client: httpx.AsyncClient
    platform: Platform
    factory: InProcessFactory
    worker: AsyncWorker

    async def queue(self, name: str, body: bytes = b"", **headers: str) -> httpx.Response:
        return await self.client.post(
            f"/fn/{name}", content=body, headers={"Prefer": "respond-async", **headers}
        )

    async def ended(self, call_id: str, timeout_s: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                r = await self.client.get(f"/v1/invocations/{call_id}")
                assert r.status_code == 200, r.text
                if r.json()["status"] in ("succeeded", "failed", "dead"):
                    return dict(r.json())
                await asyncio.sleep(0.05)


@pytest.fixture
async def app(redis: aioredis.Redis) -> AsyncIterator[AsyncApp]:
    factory = InProcessFactory()
    pool = Pool(factory, PoolSettings(max_vms=2, idle_target=0, queue_timeout_s=5))
    platform = Platform(
        Registry(redis), pool, "test-node", autoscale=False, async_settings=SETTINGS
    )
    await pool.start()
    await platform.start()
    application = create_app(platform, TOKEN, GatewaySettings())
    telemetry: Telemetry = application.state.telemetry
    worker = AsyncWorker(platform.queue, AppRunner(platform, telemetry), "test-node", SETTINGS)
    telemetry.queue.worker = worker
    transport = httpx.ASGITransport(app=application)
    try:
        async with (
            worker,
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
        ):
            yield AsyncApp(c, platform, factory, worker)
    finally:
        await platform.close()


def test_prefer_is_read_as_rfc_7240_says() -> None:
    assert prefers_async(["respond-async"])
    assert prefers_async(["wait=10, Respond-Async"])
    assert prefers_async(["return=minimal", "respond-async; x=1"])
    assert not prefers_async([]) and not prefers_async(["respond-asynchronously"])


async def test_an_async_call_answers_202_and_keeps_the_sync_response(app: AsyncApp) -> None:
    await deploy(app.client, "echo", "echo")
    sync = await app.client.post("/fn/echo", content=b"same bytes")
    r = await app.queue("echo", b"same bytes")
    assert r.status_code == 202, r.text
    call_id = r.json()["id"]
    assert r.headers["location"] == f"/v1/invocations/{call_id}" == r.json()["location"]
    assert r.headers["preference-applied"] == "respond-async"
    call = await app.ended(call_id)
    assert (call["status"], call["attempts"], call["http_status"]) == ("succeeded", 1, 200)
    assert call["node"] == "test-node" and call["response"].endswith("/response")
    kept = await app.client.get(f"/v1/invocations/{call_id}/response")
    assert (kept.status_code, kept.content) == (sync.status_code, sync.content)
    assert kept.headers["x-invocation-id"] == call_id  # the run's record has the call's id
    assert kept.headers["content-type"] == sync.headers["content-type"]
    logs = (await app.client.get("/v1/functions/echo/invocations", headers=AUTH)).json()
    assert [rec["id"] for rec in logs].count(call_id) == 1
    metrics = (await app.client.get("/metrics")).text
    assert 'unifaas_async_calls_total{outcome="succeeded"} 1.0' in metrics
    assert 'unifaas_async_queue_depth{state="queued"} 0.0' in metrics
    assert 'unifaas_async_accepted_total{function="echo"} 1.0' in metrics


async def test_what_is_knowable_is_refused_before_queueing(
    app: AsyncApp, redis: aioredis.Redis
) -> None:
    await deploy(app.client, "secret", "echo", public=False)
    r = await app.queue("nope")
    assert (r.status_code, r.json()["error"]["kind"]) == (404, "not_found")
    r = await app.queue("secret")
    assert (r.status_code, r.json()["error"]["kind"]) == (401, "unauthorized")
    r = await app.queue("secret", **{"X-Callback-Url": "http://elsewhere.example/hook"})
    assert r.status_code == 401  # the token first
    await deploy(app.client, "echo", "echo")
    for url in ("http://elsewhere.example/hook", "ftp://127.0.0.1/x", "not a url"):
        r = await app.queue("echo", **{"X-Callback-Url": url})
        assert (r.status_code, r.json()["error"]["kind"]) == (400, "invalid_callback"), url
    assert await redis.xlen(keys.async_queue_key()) == 0  # nothing of them was queued
    # A private function's call: its status needs the token, as does any unknown id.
    r = await app.client.post(
        "/fn/secret", headers={"Prefer": "respond-async", **AUTH}, content=b"x"
    )
    call_id = r.json()["id"]
    assert (await app.client.get(f"/v1/invocations/{call_id}")).status_code == 401
    assert (await app.client.get(f"/v1/invocations/{call_id}", headers=AUTH)).status_code == 200
    assert (await app.client.get("/v1/invocations/unknown")).status_code == 401
    r = await app.client.get("/v1/invocations/unknown/response", headers=AUTH)
    assert (r.status_code, r.json()["error"]["kind"]) == (404, "not_found")


async def test_a_response_asked_too_early_is_409_and_a_trap_is_failed(app: AsyncApp) -> None:
    await deploy(app.client, "loop", "misbehave", args=["loop"], timeout_s=1.0)
    await deploy(app.client, "trap", "misbehave", args=["trap"])
    slow = (await app.queue("loop")).json()["id"]
    r = await app.client.get(f"/v1/invocations/{slow}/response")
    assert (r.status_code, r.json()["error"]["kind"]) == (409, "not_finished")
    assert r.headers["retry-after"] == "1"
    trapped = (await app.queue("trap")).json()["id"]
    call = await app.ended(trapped)
    assert (call["status"], call["attempts"], call["http_status"]) == ("failed", 1, 500)
    body = (await app.client.get(f"/v1/invocations/{trapped}/response")).json()
    assert body["error"]["kind"] == "trap"  # the sync call's error body, exactly
    call = await app.ended(slow)
    assert (call["status"], call["http_status"]) == ("failed", 504)  # its timeout


async def test_lost_vms_are_retried_until_dead_then_retried_by_hand(app: AsyncApp) -> None:
    await deploy(app.client, "echo", "echo")
    await app.client.post("/fn/echo", content=b"warm")  # a VM, to be lost
    for sandbox in app.factory.sandboxes:
        sandbox.die_on_next_call = True
    original = app.factory.boot

    async def doomed(fn_id: str | None = None) -> Any:  # every VM dies under its call
        sandbox = await original(fn_id)
        sandbox.die_on_next_call = True
        return sandbox

    app.factory.boot = doomed  # type: ignore[method-assign]
    call_id = (await app.queue("echo", b"x")).json()["id"]
    call = await app.ended(call_id)
    assert (call["status"], call["attempts"]) == ("dead", 3)
    assert "gave up after 3 attempts" in call["error"]
    r = await app.client.get(f"/v1/invocations/{call_id}/response")
    assert r.json()["error"]["kind"] == "sandbox_lost"  # the last attempt's answer
    (dead,) = (await app.client.get("/v1/dead-letters", headers=AUTH)).json()
    assert dead["id"] == call_id
    app.factory.boot = original  # type: ignore[method-assign]
    r = await app.client.post(f"/v1/dead-letters/{call_id}/retry", headers=AUTH)
    assert (r.status_code, r.json()["status"], r.json()["attempts"]) == (202, "queued", 0)
    call = await app.ended(call_id)
    assert (call["status"], call["attempts"]) == ("succeeded", 1)
    assert (await app.client.get("/v1/dead-letters", headers=AUTH)).json() == []
    r = await app.client.post(f"/v1/dead-letters/{call_id}/retry", headers=AUTH)
    assert (r.status_code, r.json()["error"]["kind"]) == (409, "not_dead")


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        server.should_exit = True
        await task


async def test_the_callback_gets_the_response_when_the_call_ends(app: AsyncApp) -> None:
    await deploy(app.client, "echo", "echo")
    async with _receiver() as (url, got):
        r = await app.queue("echo", b"call me back", **{"X-Callback-Url": url})
        call = await app.ended(r.json()["id"])
        async with asyncio.timeout(10):
            while not got or call["callback"] is None:
                await asyncio.sleep(0.05)
                call = await app.ended(r.json()["id"])
    ((headers, body),) = got
    assert body == b"call me back"
    assert headers["x-unifaas-async-id"] == call["id"]
    assert (headers["x-unifaas-status"], headers["x-unifaas-http-status"]) == ("succeeded", "200")
    assert call["callback"] == "delivered (204)"
