"""The HTTP layer in-process (httpx ASGI transport): routing, the error table, headers, auth."""

from __future__ import annotations

import asyncio

import httpx
import wasmtime

from tests.conftest import wasm
from tests.gateway.conftest import AUTH, InProcessFactory, deploy


async def test_invoke_raw_with_headers(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    r = await client.post("/fn/echo", content=b"ping")
    assert r.status_code == 200 and r.content == b"ping"
    assert r.headers["x-exit-code"] == "0"
    assert r.headers["x-start"] == "cold"
    assert r.headers["x-function-version"] == "1"
    assert len(r.headers["x-invocation-id"]) == 16
    vm, run, platform = (m.split(";dur=") for m in r.headers["server-timing"].split(", "))
    assert (vm[0], run[0], platform[0]) == ("vm", "run", "platform")
    assert float(platform[1]) >= float(vm[1]) >= float(run[1]) > 0
    r = await client.post("/fn/echo", content=b"again")
    assert r.headers["x-start"] == "warm"
    assert r.headers["x-retries"] == "0"


async def test_a_call_whose_vm_is_lost_is_answered_and_counted(
    client: httpx.AsyncClient, factory: InProcessFactory
) -> None:
    await deploy(client, "echo", "echo")
    assert (await client.post("/fn/echo", content=b"one")).status_code == 200
    factory.sandboxes[0].die_on_next_call = True
    r = await client.post("/fn/echo", content=b"two")
    assert (r.status_code, r.content, r.headers["x-retries"]) == (200, b"two", "1")
    assert r.headers["x-start"] == "cold"  # the retry found no other VM
    metrics = (await client.get("/metrics")).text
    assert 'unifaas_invocation_retries_total{function="echo"} 1.0' in metrics
    for _ in range(50):  # the record is written in the background
        logs = (await client.get("/v1/functions/echo/invocations", headers=AUTH)).json()
        if len(logs) == 2:
            break
        await asyncio.sleep(0.02)
    assert [rec["retries"] for rec in logs] == [1, 0]  # newest first


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


async def test_hostile_modules_refused_at_deploy_and_echo_keeps_serving(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, "echo", "echo")
    start = '(func (export "_start"))'
    hostile = {
        "memory_above_cap": f'(memory (export "memory") 65536) {start}',  # 4 GiB minimum
        "table_too_large": f'(memory (export "memory") 1) (table 50000000 funcref) {start}',
    }
    for reason, body in hostile.items():
        r = await client.post(
            "/v1/functions/hostile",
            headers=AUTH,
            files={"module": ("m.wasm", bytes(wasmtime.wat2wasm(f"(module {body})")))},
        )
        assert r.status_code == 400, r.text
        assert r.json().get("error", {}).get("reason") == reason, r.text
        assert (await client.post("/fn/echo", content=b"still")).content == b"still"
    # A cap the module's minimum fits is accepted.
    roomy = f'(module (memory (export "memory") 512) {start})'  # 32 MiB
    r = await client.post(
        "/v1/functions/roomy",
        headers=AUTH,
        files={"module": ("m.wasm", bytes(wasmtime.wat2wasm(roomy)))},
        data={"config": '{"memory_mib": 32}'},
    )
    assert r.status_code == 201, r.text


async def test_auth_and_private_functions(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/functions")).status_code == 401
    r = await client.get("/v1/functions", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    await deploy(client, "secret", "hello", public=False)
    assert (await client.get("/fn/secret")).status_code == 401
    assert (await client.get("/fn/secret", headers=AUTH)).status_code == 200
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_the_function_list_comes_in_pages_linked_to_the_next(
    client: httpx.AsyncClient,
) -> None:
    for name in ("p3", "p1", "p2"):
        await deploy(client, name, "hello")
    r = await client.get("/v1/functions", params={"limit": 2}, headers=AUTH)
    assert [f["name"] for f in r.json()] == ["p1", "p2"]
    assert r.headers["link"] == '</v1/functions?limit=2&after=p2>; rel="next"'
    last = await client.get(r.links["next"]["url"], headers=AUTH)
    assert [f["name"] for f in last.json()] == ["p3"] and "link" not in last.headers
    too_many = await client.get("/v1/functions", params={"limit": 5000}, headers=AUTH)
    assert too_many.status_code == 422  # at most 1000 a page: invalid_request


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


async def test_a_function_over_its_own_limits_gets_429_and_others_keep_serving(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, "echo", "echo")
    await deploy(client, "limited", "echo", rate_limit=1)
    assert (await client.post("/fn/limited", content=b"1")).status_code == 200
    r = await client.post("/fn/limited", content=b"2")
    assert r.status_code == 429 and r.json()["error"]["kind"] == "throttled"
    assert r.headers["retry-after"] == "1"
    assert "rate limit" in r.json()["error"]["message"]
    # Calls in flight: a second call while the first loops is refused at once.
    await deploy(client, "busy", "misbehave", args=["loop"], timeout_s=2, max_in_flight=1)
    platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    first = asyncio.ensure_future(client.post("/fn/busy"))
    for _ in range(500):  # until the first call holds its place
        if platform.throttle.in_flight("busy"):
            break
        await asyncio.sleep(0.01)
    r = await client.post("/fn/busy")
    assert r.status_code == 429 and "max_in_flight 1" in r.json()["error"]["message"]
    assert (await client.post("/fn/echo", content=b"free")).content == b"free"
    assert (await first).status_code == 504
    metrics = (await client.get("/metrics")).text
    throttled = 'abi="raw",function="busy",outcome="throttled",start="none"} 1.0'
    assert "unifaas_invocations_total{" + throttled in metrics
