"""End to end like a user: ``unifaas up`` in a subprocess, the CLI and plain HTTP against it.

Real redis-server (embedded), real uvicorn socket, real microVMs. One platform
is shared by most tests; the restart test runs its own.
"""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import wasmtime

from functions import component_module
from loadtests.launch import platform_process
from scheduler.state.redis_server import EmbeddedRedis
from tests.platforms import LivePlatform, children_of, running_platform
from tests.wasm_runtime.component.fixtures import component

pytestmark = pytest.mark.vm


def test_deploy_invoke_redeploy_rollback_delete(
    platform: LivePlatform, modules: dict[str, Path]
) -> None:
    out = platform.cli("deploy", "greeter", str(modules["hello"]))
    assert out.returncode == 0, out.stderr
    assert b"version 1" in out.stdout and b"curl" in out.stdout
    call = platform.cli("invoke", "greeter")
    assert call.returncode == 0 and call.stdout == b"Hello from unifaas!\n"

    assert platform.cli("deploy", "greeter", str(modules["echo"])).returncode == 0
    call = platform.cli("invoke", "greeter", "--data", "v2 echo")
    assert call.stdout == b"v2 echo"
    with platform.http() as http:
        r = http.post("/fn/greeter", content=b"x")
        assert r.headers["x-function-version"] == "2"
        assert r.headers["x-start"] in ("warm", "prewarmed", "cold")
        assert r.headers["x-exit-code"] == "0"
        record = http.get(f"/v1/invocations/{r.headers['x-invocation-id']}")
        assert record.status_code in (200, 404)  # the record is written just after the reply

    assert platform.cli("rollback", "greeter").returncode == 0
    assert platform.cli("invoke", "greeter").stdout == b"Hello from unifaas!\n"
    described = json.loads(platform.cli("describe", "greeter", "--json").stdout)
    assert described["current"] == 1 and len(described["versions"]) == 2
    listed = json.loads(platform.cli("list", "--json").stdout)
    assert "greeter" in [f["name"] for f in listed]
    logs = platform.cli("logs", "greeter", "--json")
    assert logs.returncode == 0 and json.loads(logs.stdout)

    assert platform.cli("delete", "greeter").returncode == 0
    gone = platform.cli("invoke", "greeter")
    assert gone.returncode != 0 and b"404" in gone.stderr


def test_wagi_routing_headers_query_and_status(
    platform: LivePlatform, modules: dict[str, Path]
) -> None:
    assert platform.cli("deploy", "cgi", str(modules["cgi"]), "--abi", "wagi").returncode == 0
    with platform.http() as http:
        r = http.get("/fn/cgi/some/path?name=ada&x=1", headers={"X-Custom": "hi"})
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert "PATH_INFO=/some/path" in body
    assert "QUERY_STRING=name=ada&x=1" in body
    assert "HTTP_X_CUSTOM=hi" in body
    assert "REQUEST_METHOD=GET" in body
    assert "name=ada" in body.splitlines()


def test_files_bundle_read_and_write_isolation(
    platform: LivePlatform, modules: dict[str, Path], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "data.txt").write_text("from the bundle\n")
    out = platform.cli("deploy", "filesfn", str(modules["files"]), "--files", str(site))
    assert out.returncode == 0, out.stderr
    for _ in range(2):
        call = platform.cli("invoke", "filesfn")
        assert call.stdout == b"from the bundle\nscratch.txt existed: no\n"


def test_error_statuses(platform: LivePlatform, modules: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not wasm at all")
    assert (
        platform.cli(
            "deploy", "mis", str(modules["misbehave"]), "--timeout", "1", "--memory", "16"
        ).returncode
        == 0
    )
    with platform.http() as http:
        assert http.post("/fn/nope").status_code == 404
        r = http.post("/v1/functions/badfn", files={"module": ("bad.wasm", bad.read_bytes())})
        assert r.status_code == 400 and r.json()["error"]["kind"] == "invalid_module"
        r = http.post("/fn/mis", content=b"x" * (7 * 1024 * 1024))
        assert r.status_code == 413
        deployed = http.post("/v1/functions/mis/rollback")  # no earlier version
        assert deployed.status_code in (400, 404, 409)

    for mode, status, kind in (
        ("loop", 504, "timeout"),
        ("oom", 500, "out_of_memory"),
        ("trap", 500, "trap"),
    ):
        out = platform.cli(
            "deploy",
            f"mis-{mode}",
            str(modules["misbehave"]),
            "--arg",
            mode,
            "--timeout",
            "1",
            "--memory",
            "16",
        )
        assert out.returncode == 0, out.stderr
        # misbehave reads its mode from argv, so each mode is its own function
        r = httpx.post(f"{platform.url}/fn/mis-{mode}", timeout=60)
        assert r.status_code == status, r.text
        assert r.json()["error"]["kind"] == kind
        assert "x-exit-code" in r.headers
    # the platform and other functions keep serving
    assert platform.cli("invoke", "mis-trap").returncode != 0
    assert platform.cli("deploy", "ok", str(modules["hello"])).returncode == 0
    assert platform.cli("invoke", "ok").returncode == 0
    # private functions need the token
    assert platform.cli("deploy", "secret", str(modules["hello"]), "--private").returncode == 0
    assert httpx.post(f"{platform.url}/fn/secret").status_code == 401
    with platform.http() as http:
        assert http.post("/fn/secret").status_code == 200
    assert httpx.get(f"{platform.url}/v1/functions").status_code == 401


def test_concurrency_beyond_capacity_all_complete(
    platform: LivePlatform, modules: dict[str, Path]
) -> None:
    names = ["c1", "c2", "c3", "c4"]
    for name in names:
        out = platform.cli("deploy", name, str(modules["echo"]), "--concurrency", "2")
        assert out.returncode == 0, out.stderr

    def hit(i: int) -> tuple[int, bytes, bytes]:
        name = names[i % len(names)]
        body = f"{name}-{i}".encode()
        r = httpx.post(f"{platform.url}/fn/{name}", content=body, timeout=120)
        return r.status_code, r.content, body

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(hit, range(32)))
    assert all(status == 200 and got == want for status, got, want in results), results
    status = json.loads(platform.cli("status", "--json").stdout)
    assert status["pool"]


def test_restart_keeps_functions_and_stops_vms(tmp_path: Path, modules: dict[str, Path]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with running_platform(state, max_vms=2) as p:
        assert p.cli("deploy", "keep", str(modules["echo"])).returncode == 0
        assert p.cli("deploy", "keep", str(modules["hello"])).returncode == 0
        assert p.cli("invoke", "keep").returncode == 0
        pid = p.proc.pid
        kids = children_of(pid)
        assert kids  # redis-server and qemu
    assert p.proc.returncode == 0
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists() or "Z" in Path(f"/proc/{kid}/stat").read_text()
    with running_platform(state, max_vms=2) as p:
        described = json.loads(p.cli("describe", "keep", "--json").stdout)
        assert [v["version"] for v in described["versions"]] == [1, 2]
        assert p.cli("invoke", "keep").stdout == b"Hello from unifaas!\n"
        assert p.cli("rollback", "keep").returncode == 0
        assert p.cli("invoke", "keep", "--data", "again").stdout == b"again"


async def test_external_redis_url(
    tmp_path: Path, modules: dict[str, Path], redis: aioredis.Redis, embedded_redis: EmbeddedRedis
) -> None:
    """``up`` given a Redis URL keeps its state there and starts no private server."""
    state = tmp_path / "state"
    state.mkdir()
    extra = {"UNIFAAS_REDIS_URL": embedded_redis.url}
    with platform_process(state, max_vms=2, extra_env=extra) as served:
        assert served.cli("deploy", "ext", str(modules["echo"])).returncode == 0
        assert served.cli("invoke", "ext", "--data", "via external").stdout == b"via external"
    assert await redis.zscore("unifaas:functions", "ext") is not None
    assert not (state / "redis").exists()


def test_a_memory_minimum_above_the_cap_is_refused_at_deploy(
    platform: LivePlatform, modules: dict[str, Path], tmp_path: Path
) -> None:
    big = tmp_path / "big.wasm"
    big.write_bytes(
        bytes(
            wasmtime.wat2wasm('(module (memory (export "memory") 65536) (func (export "_start")))')
        )
    )
    out = platform.cli("deploy", "big", str(big), "--memory", "64")
    assert out.returncode != 0
    assert b"400" in out.stderr and b"4096 MiB" in out.stderr, out.stderr
    assert platform.cli("deploy", "small", str(modules["echo"])).returncode == 0
    assert platform.cli("invoke", "small", "--data", "ok").stdout == b"ok"


def test_cli_async_invoke_and_result(platform: LivePlatform, modules: dict[str, Path]) -> None:
    assert platform.cli("deploy", "async-echo", str(modules["echo"])).returncode == 0
    queued = platform.cli("invoke", "async-echo", "--async", "--data", "later, please")
    assert queued.returncode == 0, queued.stderr
    call_id = queued.stdout.decode().strip()
    assert len(call_id) >= 16 and b"result" in queued.stderr
    done = platform.cli("result", call_id, "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"later, please"
    status = json.loads(platform.cli("result", call_id, "--json").stdout)
    assert status["status"] == "succeeded" and status["function"] == "async-echo"
    unknown = platform.cli("result", "0" * 32)
    assert unknown.returncode != 0 and b"not" in unknown.stderr.lower()
    assert platform.cli("dead-letters").stdout.strip() == b"no dead-letters"
    assert platform.cli("delete", "async-echo").returncode == 0


def test_a_wasi_http_component_answers_from_its_microvm(
    platform: LivePlatform, tmp_path: Path
) -> None:
    echo = tmp_path / "http-echo.wasm"
    echo.write_bytes(component_module("http-echo"))
    out = platform.cli("deploy", "hecho", str(echo), "--timeout", "5")
    assert out.returncode == 0, out.stderr
    silent = tmp_path / "silent.wasm"
    silent.write_bytes(component("silent"))
    assert platform.cli("deploy", "hsilent", str(silent)).returncode == 0
    files = tmp_path / "files.wasm"
    files.write_bytes(component("files"))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("from the bundle")
    out = platform.cli("deploy", "hfiles", str(files), "--files", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    with platform.http() as http:
        for body in (b"through the wall", b"", bytes(range(256)) * 300):
            r = http.post("/fn/hecho/x/y?z=1", content=body)
            assert (r.status_code, r.content) == (200, body), r.text
            assert r.headers["x-path"] == "/x/y?z=1"
            assert r.headers["x-start"] in ("warm", "prewarmed", "cold")
            assert "vm;dur=" in r.headers["server-timing"]
        r = http.get("/fn/hsilent")
        assert (r.status_code, r.json()["error"]["reason"]) == (502, "no_response")
        for _ in range(2):  # each call writes to a fresh copy of the bundle
            r = http.get("/fn/hfiles")
            assert (r.status_code, r.content) == (200, b"fresh denied from the bundle"), r.text
    described = json.loads(platform.cli("describe", "hecho", "--json").stdout)
    version = described["versions"][-1]
    assert version["config"]["abi"] == "http"
    assert "wasi:http/types@0.2.0" in version["granted_imports"]
