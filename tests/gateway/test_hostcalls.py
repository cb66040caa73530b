"""Hostcalls through the platform in-process: the real wasmtime runner and a real Redis,
the agent's part played by a thread bridge (tests/gateway/conftest.py). The same paths
through real microVMs are in tests/functions/test_examples.py."""

from __future__ import annotations

import asyncio
import base64
import http.server
import ipaddress
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx
import pytest
import redis.asyncio as aioredis
import wasmtime

from gateway.app import create_app
from gateway.settings import GatewaySettings
from scheduler.hostcalls.outbound import BadHostEntry, parse_host_entry
from scheduler.hostcalls.session import Capabilities
from scheduler.model import FunctionConfig
from scheduler.pool.pool import Pool
from scheduler.registry.registry import Registry
from scheduler.roles.platform import Platform
from scheduler.settings import HostcallSettings, PoolSettings
from tests.conftest import c_module
from tests.gateway.conftest import AUTH, DEPLOY_LIMIT, TOKEN, InProcessFactory
from wasm_runtime.hostcalls import HostRequest, Kind, Status


class Upstream(http.server.BaseHTTPRequestHandler):
    """A local server the functions fetch from: /slow sleeps, /big is large, else echo."""

    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Upstream.seen.append((self.command, self.path, body))
        if self.path == "/slow":
            time.sleep(3)
        elif self.path.startswith("/wait/"):
            time.sleep(float(self.path.removeprefix("/wait/")))
        payload = b"b" * 5000 if self.path == "/big" else b"upstream:" + self.path.encode() + body
        self.send_response(418 if self.path == "/teapot" else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


HOSTCALLS = HostcallSettings(
    max_per_call=50, http_timeout_s=5, http_max_response_bytes=4096, kv_max_keys=100
)


@pytest.fixture
async def setup(
    redis: aioredis.Redis, factory: InProcessFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    pool = Pool(factory, PoolSettings(max_vms=2, idle_target=0, queue_timeout_s=5))
    platform = Platform(Registry(redis), pool, "test-node", hostcall_settings=HOSTCALLS)
    await platform.start()
    await pool.start()
    settings = GatewaySettings(max_body_bytes=1024, max_deploy_bytes=DEPLOY_LIMIT)
    app = create_app(platform, TOKEN, settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, platform
    finally:
        await platform.close()


async def deploy(
    client: httpx.AsyncClient,
    name: str,
    module: str = "hostprobe",
    secrets: dict[str, str] | None = None,
    **config: Any,
) -> httpx.Response:
    data = {"config": json.dumps(config)}
    if secrets is not None:
        data["secrets"] = json.dumps(secrets)
    return await client.post(
        f"/v1/functions/{name}",
        headers=AUTH,
        files={"module": (f"{module}.wasm", c_module(module))},
        data=data,
    )


async def probe(client: httpx.AsyncClient, name: str, command: str) -> list[str]:
    r = await client.post(f"/fn/{name}", content=command.encode())
    assert r.status_code == 200, r.text
    return r.text.split("\n")


async def test_key_value_is_scoped_to_the_function_and_kept_across_versions(
    setup: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = setup
    for name in ("a", "b"):
        assert (await deploy(client, name)).status_code == 201
    assert await probe(client, "a", "set color\nblue") == ["ok", ""]
    assert await probe(client, "a", "get color") == ["ok", "blue"]
    assert await probe(client, "b", "get color") == ["not_found", ""]
    assert await probe(client, "a", "set colour\ngreen") == ["ok", ""]
    assert await probe(client, "a", "set size\n9") == ["ok", ""]
    assert await probe(client, "a", "list col") == ["ok", "color", "colour", ""]
    assert await probe(client, "a", "list ") == ["ok", "color", "colour", "size", ""]
    assert await probe(client, "b", "list ") == ["ok", ""]
    assert await probe(client, "a", "incr size") == ["ok", "10", ""]
    assert await probe(client, "a", "incr color") == ["not_a_number", "0", ""]
    # A new version sees the same store; deleting the function deletes it.
    assert (await deploy(client, "a")).status_code == 201
    assert await probe(client, "a", "get color") == ["ok", "blue"]
    assert await probe(client, "a", "del color") == ["ok", ""]
    assert await probe(client, "a", "del color") == ["not_found", ""]
    assert (await client.delete("/v1/functions/a", headers=AUTH)).status_code == 200
    assert (await deploy(client, "a")).status_code == 201
    assert await probe(client, "a", "list ") == ["ok", ""]


async def test_key_value_limits_each_have_their_code(
    setup: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, platform = setup
    assert (await deploy(client, "lim", kv_max_keys=3, kv_max_bytes=10_000)).status_code == 201
    assert await probe(client, "lim", "longkey 256") == ["ok", ""]
    assert await probe(client, "lim", "longkey 257") == ["key_too_large", ""]
    assert await probe(client, "lim", "big v 1048577") == ["value_too_large", ""]
    assert await probe(client, "lim", "set \nx") == ["invalid_argument", ""]
    assert await probe(client, "lim", "fill 5 10") == [
        "quota_keys",
        "2",
        "",
    ]  # k0, k1 + the long key
    assert await probe(client, "lim", "big k0 20000") == ["quota_bytes", ""]
    assert await probe(client, "lim", "get k0") == ["ok", "v" * 10]
    answers = platform.capabilities.stats.answers
    assert answers["kv_set", "quota_keys"] == 1 and answers["kv_set", "quota_bytes"] == 1
    assert answers["kv_set", "value_too_large"] == 1 and answers["kv_set", "key_too_large"] == 1
    metrics = (await client.get("/metrics")).text
    assert 'unifaas_hostcalls_total{kind="kv_set",outcome="quota_keys"} 1.0' in metrics
    assert "unifaas_hostcall_seconds_bucket" in metrics


async def test_hostcalls_per_call_are_bounded(setup: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = setup
    assert (await deploy(client, "spin")).status_code == 201
    assert await probe(client, "spin", "spin") == ["limit", "51", ""]
    assert await probe(client, "spin", "get x") == ["not_found", ""]  # the next call may again


async def test_outbound_http_goes_only_to_allowed_hosts(
    setup: tuple[httpx.AsyncClient, Platform], upstream: int
) -> None:
    client, platform = setup
    base = f"http://127.0.0.1:{upstream}"
    assert (await deploy(client, "out", allow_hosts=[f"127.0.0.1:{upstream}"])).status_code == 201
    assert (await deploy(client, "closed")).status_code == 201
    assert (await deploy(client, "named", allow_hosts=["localhost"])).status_code == 201
    Upstream.seen.clear()
    assert await probe(client, "out", f"http POST {base}/echo\npayload") == [
        "ok",
        "200",
        "upstream:/echopayload",
    ]
    assert await probe(client, "out", f"http GET {base}/teapot") == [
        "ok",
        "418",
        "upstream:/teapot",
    ]
    assert await probe(client, "out", f"http GET {base}/big") == ["http_too_large", ""]
    assert await probe(client, "closed", f"http GET {base}/x") == ["host_denied", ""]
    assert await probe(client, "out", f"http GET http://127.0.0.2:{upstream}/x") == [
        "host_denied",
        "",
    ]
    assert await probe(client, "out", "http GET ftp://127.0.0.1/x") == ["invalid_argument", ""]
    # localhost, named as such, admits loopback.
    url = f"http://localhost:{upstream}/named"
    assert await probe(client, "named", f"http GET {url}") == ["ok", "200", "upstream:/named"]
    assert [s[1] for s in Upstream.seen] == ["/echo", "/teapot", "/big", "/named"]
    assert platform.capabilities.stats.answers["http", "host_denied"] == 2


async def test_a_call_blocked_in_a_hostcall_ends_at_its_timeout(
    setup: tuple[httpx.AsyncClient, Platform], upstream: int
) -> None:
    client, _ = setup
    allow = [f"127.0.0.1:{upstream}"]
    assert (await deploy(client, "slow", allow_hosts=allow, timeout_s=1)).status_code == 201
    started = time.monotonic()
    r = await client.post("/fn/slow", content=f"http GET http://127.0.0.1:{upstream}/slow".encode())
    assert r.status_code == 504 and r.json()["error"]["kind"] == "timeout"
    assert time.monotonic() - started < 2.5
    assert await probe(client, "slow", "get x") == ["not_found", ""]


async def test_an_outbound_request_has_the_call_s_time_from_when_it_runs(
    setup: tuple[httpx.AsyncClient, Platform], upstream: int
) -> None:
    # One slot: the second call waits ~3 s for the first. Its request then needs 3.6 s of
    # its 5: counted from when it was accepted, only ~2 s (+ 1 s grace) would be left.
    client, _ = setup
    url = f"http://127.0.0.1:{upstream}"
    config: dict[str, Any] = {"max_vms": 1, "concurrency": 1, "timeout_s": 5}
    assert (await deploy(client, "queued", allow_hosts=[url[7:]], **config)).status_code == 201
    first = asyncio.create_task(client.post("/fn/queued", content=f"http GET {url}/wait/3"))
    await asyncio.sleep(0.3)
    second = await client.post("/fn/queued", content=f"http GET {url}/wait/3.6".encode())
    assert (await first).status_code == 200
    assert second.status_code == 200, second.text
    assert second.text.split("\n")[0] == "ok", second.text


async def test_a_call_with_an_effect_is_not_run_again_when_its_vm_dies(
    setup: tuple[httpx.AsyncClient, Platform], factory: InProcessFactory
) -> None:
    client, _ = setup
    assert (await deploy(client, "eff")).status_code == 201
    assert await probe(client, "eff", "incr n") == ["ok", "1", ""]
    factory.sandboxes[-1].die_after_call = True
    r = await client.post("/fn/eff", content=b"incr n")
    assert r.status_code == 503 and r.json()["error"]["kind"] == "sandbox_lost"
    assert "not run again" in r.json()["error"]["message"]
    # Once, not twice: the second increment happened, and only once.
    assert await probe(client, "eff", "get n") == ["ok", "2"]
    # Reads alone keep the retry: the call runs again on another VM and answers.
    factory.sandboxes[-1].die_after_call = True
    assert await probe(client, "eff", "get n") == ["ok", "2"]
    # So does a write refused before anything was written (here, a key too large).
    factory.sandboxes[-1].die_after_call = True
    r = await client.post("/fn/eff", content=b"longkey 300")
    assert r.status_code == 200 and r.headers["x-retries"] == "1"
    assert r.text == "key_too_large\n"


async def test_secrets_reach_the_function_and_nothing_else(
    setup: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = setup
    secret = "s3cr3t-value-42"
    r = await deploy(client, "sec", secrets={"API_KEY": secret}, env={"PLAIN": "p"})
    assert r.status_code == 201 and secret not in r.text
    assert r.json()["secret_names"] == ["API_KEY"]
    assert await probe(client, "sec", "env API_KEY") == ["ok", secret]
    # A deploy without secrets keeps them; {} drops them.
    assert (await deploy(client, "sec")).status_code == 201
    assert await probe(client, "sec", "env API_KEY") == ["ok", secret]
    bodies = [
        (await client.get("/v1/functions", headers=AUTH)).text,
        (await client.get("/v1/functions/sec", headers=AUTH)).text,
        (await client.get("/v1/functions/sec/invocations", headers=AUTH)).text,
        (await client.get("/metrics")).text,
    ]
    assert all(secret not in body for body in bodies)
    assert "API_KEY" in bodies[1]
    r = await deploy(client, "sec", secrets={"PLAIN": "x"}, env={"PLAIN": "p"})
    assert r.status_code == 400 and "secrets.PLAIN" in r.text
    assert (await deploy(client, "sec", secrets={})).status_code == 201
    assert await probe(client, "sec", "env API_KEY") == ["not_found", ""]


async def test_deploy_refuses_bad_hostcall_imports_and_allow_lists(
    setup: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = setup
    r = await deploy(client, "bad", allow_hosts=["http://example.com/"])
    assert r.status_code == 400 and "allow_hosts" in r.text

    module = bytes(
        wasmtime.wat2wasm(
            '(module (import "unifaas" "kv_fetch" (func (result i32))) (memory (export "memory") 1)'
            ' (func (export "_start")))'
        )
    )
    r = await client.post("/v1/functions/bad", headers=AUTH, files={"module": ("m.wasm", module)})
    assert r.status_code == 400 and "unifaas.kv_fetch" in r.json()["error"]["message"]


def test_host_rules() -> None:
    assert str(parse_host_entry("Example.COM:8080")) == "example.com:8080"
    assert str(parse_host_entry("[::1]:9")) == "[::1]:9"
    for bad in ("http://x", "a/b", "*.example.com", "", "x:99999"):
        with pytest.raises(BadHostEntry):
            parse_host_entry(bad)
    public = ipaddress.ip_address("93.184.216.34")
    private = ipaddress.ip_address("10.0.0.5")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert parse_host_entry("example.com").admits(public)
    # A name cannot be pointed at a private or loopback address by its DNS...
    assert not parse_host_entry("example.com").admits(private)
    assert not parse_host_entry("example.com").admits(loopback)
    # ... unless the entry names that address, or is localhost for loopback.
    assert parse_host_entry("10.0.0.5").admits(private)
    assert not parse_host_entry("10.0.0.6").admits(private)
    assert parse_host_entry("localhost").admits(loopback)
    assert not parse_host_entry("localhost").admits(private)


async def test_redis_away_is_unavailable_not_an_error() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    caps = Capabilities(client)
    try:
        session = caps.session("f", FunctionConfig())
        answer = await session(HostRequest(Kind.KV_SET, key=b"k", value=b"v"))
        assert answer.status is Status.UNAVAILABLE and "redis" in answer.message
        assert session.made_effect  # a write that may have reached Redis counts
    finally:
        await caps.aclose()
        await client.aclose()


async def test_secret_values_are_redacted_from_what_the_platform_keeps_and_shows(
    setup: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, platform = setup
    secret = "s3cr3t-value-91"
    secrets = {"TOKEN": secret, "PIN": "12"}  # too short to mask: left as it is
    assert (await deploy(client, "leaky", secrets=secrets)).status_code == 201
    ok = await client.post("/fn/leaky", content=b"leak TOKEN 0", headers={"X-Unifaas-Stderr": "1"})
    assert ok.status_code == 200
    assert ok.text == f"body: {secret}\n"  # the function's own answer passes unchanged
    shown = base64.b64decode(ok.headers["x-stderr"]).decode()
    assert shown == "log: [redacted:TOKEN] and again [redacted:TOKEN]\n"
    failed = await client.post("/fn/leaky", content=b"leak TOKEN trap")
    assert failed.status_code == 500 and secret not in failed.text
    assert failed.json()["error"]["kind"] == "trap"
    assert "[redacted:TOKEN]" in failed.json()["error"]["stderr"]
    await platform.records.flush(10)
    logs = await client.get("/v1/functions/leaky/invocations", headers=AUTH)
    assert len(logs.json()) == 2 and secret not in logs.text
    assert "[redacted:TOKEN]" in logs.text
