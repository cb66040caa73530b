"""The HTTP layer in-process (httpx ASGI transport): routing, the error table, headers, auth.

The pool runs a fake sandbox that executes functions with the real wasmtime
runner in this process, so these tests are fast; the same paths over a real
socket and real microVMs are in test_platform_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.settings import GatewaySettings
from scheduler.pool import Pool, PoolSettings
from scheduler.registry import Registry
from scheduler.service import Platform
from tests.conftest import wasm
from wasm_runtime.runner import FunctionRuntime, LoadedFunction
from wasm_runtime.types import Invocation, InvocationResult

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class InProcessSandbox:
    def __init__(self) -> None:
        self._runtime = FunctionRuntime()
        self._functions: dict[str, LoadedFunction] = {}
        self.alive = True

    async def load(self, fn_id: str, artifact: bytes, *, files: bytes | None = None) -> Any:
        self._functions[fn_id] = await asyncio.to_thread(
            self._runtime.load, artifact, files_tar=files
        )

    async def invoke(self, fn_id: str, invocation: Invocation) -> InvocationResult:
        return await asyncio.to_thread(self._runtime.invoke, self._functions[fn_id], invocation)

    async def stop(self) -> None:
        self.alive = False
        self._runtime.close()

    def rss_kib(self) -> int:
        return 0


class InProcessFactory:
    async def boot(self) -> InProcessSandbox:
        return InProcessSandbox()


@pytest.fixture
async def client(redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    pool = Pool(InProcessFactory(), PoolSettings(max_vms=2, idle_target=0, queue_timeout_s=5))
    platform = Platform(Registry(redis), pool, "test-node")
    await pool.start()
    settings = GatewaySettings(max_body_bytes=1024)
    app = create_app(platform, TOKEN, settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await platform.close()


async def deploy(client: httpx.AsyncClient, name: str, module: str, **config: Any) -> Any:
    import json

    r = await client.post(
        f"/v1/functions/{name}",
        headers=AUTH,
        files={"module": (f"{module}.wasm", wasm(module))},
        data={"config": json.dumps(config)},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_invoke_raw_with_headers(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    r = await client.post("/fn/echo", content=b"ping")
    assert r.status_code == 200 and r.content == b"ping"
    assert r.headers["x-exit-code"] == "0"
    assert r.headers["x-start"] == "cold"
    assert r.headers["x-function-version"] == "1"
    assert len(r.headers["x-invocation-id"]) == 16
    r = await client.post("/fn/echo", content=b"again")
    assert r.headers["x-start"] == "warm"


async def test_error_table(client: httpx.AsyncClient) -> None:
    r = await client.get("/fn/missing")
    assert r.status_code == 404 and r.json()["error"]["kind"] == "not_found"
    r = await client.post(
        "/v1/functions/bad", headers=AUTH, files={"module": ("bad.wasm", b"(module)")}
    )
    assert r.status_code == 400 and "WAT" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/functions/bad",
        headers=AUTH,
        files={"module": ("m", wasm("echo"))},
        data={"config": '{"timeout_s": 0}'},
    )
    assert r.status_code == 400 and r.json()["error"]["kind"] == "invalid_config"
    r = await client.post(
        "/v1/functions/bad",
        headers=AUTH,
        files={"module": ("m", wasm("echo"))},
        data={"config": '{"bogus": 1}'},
    )
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]
    await deploy(client, "loop", "misbehave", args=["loop"], timeout_s=0.3)
    r = await client.post("/fn/loop")
    assert r.status_code == 504 and r.headers["x-exit-code"] == "124"
    await deploy(client, "trap", "misbehave", args=["trap"])
    r = await client.post("/fn/trap")
    assert r.status_code == 500 and r.json()["error"]["kind"] == "trap"
    await deploy(client, "echo", "echo")
    r = await client.post("/fn/echo", content=b"x" * 2048)
    assert r.status_code == 413
    assert (await client.post("/fn/echo", content=b"fine")).status_code == 200


async def test_auth_and_private_functions(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/functions")).status_code == 401
    r = await client.get("/v1/functions", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    await deploy(client, "secret", "hello", public=False)
    assert (await client.get("/fn/secret")).status_code == 401
    assert (await client.get("/fn/secret", headers=AUTH)).status_code == 200
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_wagi_and_management(client: httpx.AsyncClient) -> None:
    await deploy(client, "cgi", "cgi", abi="wagi")
    r = await client.get("/fn/cgi/a/b?q=1", headers={"X-Thing": "yes"})
    assert r.status_code == 201
    assert "PATH_INFO=/a/b" in r.text and "HTTP_X_THING=yes" in r.text
    await deploy(client, "cgi", "hello")
    described = (await client.get("/v1/functions/cgi", headers=AUTH)).json()
    assert described["current"] == 2 and len(described["versions"]) == 2
    r = await client.post("/v1/functions/cgi/rollback", headers=AUTH)
    assert r.json()["version"] == 1
    names = [f["name"] for f in (await client.get("/v1/functions", headers=AUTH)).json()]
    assert names == ["cgi"]
    status = (await client.get("/v1/status", headers=AUTH)).json()
    assert status["node"] == "test-node"
    assert (await client.delete("/v1/functions/cgi", headers=AUTH)).status_code == 200
    assert (await client.get("/fn/cgi")).status_code == 404
    assert (await client.get("/v1/invocations/nope", headers=AUTH)).status_code == 404
    assert "/fn/{name}" in (await client.get("/openapi.json")).json()["paths"]
