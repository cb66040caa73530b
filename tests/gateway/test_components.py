"""wasi:http components through the platform in-process (the real wasmtime runner and a real
Redis, as tests/gateway/conftest.py sets up): deploy, describe, call, and each misbehaviour's
documented answer. The same path through real microVMs is in test_platform_e2e.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import wasmtime

from functions import component_module
from tests.gateway.conftest import AUTH
from tests.wasm_runtime.component.fixtures import component
from wasm_runtime.bundle import pack_files


async def deploy(
    client: httpx.AsyncClient, name: str, wasm: bytes, files: bytes | None = None, **config: Any
) -> httpx.Response:
    parts = {"module": (f"{name}.wasm", wasm)}
    if files is not None:
        parts["files"] = ("files.tar", files)
    return await client.post(
        f"/v1/functions/{name}", headers=AUTH, files=parts, data={"config": json.dumps(config)}
    )


async def test_a_component_deploys_as_http_and_answers_under_its_mount(
    client: httpx.AsyncClient,
) -> None:
    r = await deploy(client, "hecho", component_module("http-echo"))
    assert r.status_code == 201, r.text
    version = r.json()
    assert version["config"]["abi"] == "http"
    assert "wasi:http/types@0.2.0" in version["granted_imports"]
    assert version["denied_imports"] == []
    r = await client.post("/fn/hecho/a/b?c=1", content=b"hi there")
    assert r.status_code == 200, r.text
    assert r.content == b"hi there"
    assert r.headers["x-path"] == "/a/b?c=1"
    assert r.headers["x-exit-code"] == "0"
    assert r.headers["x-start"] in ("cold", "prewarmed", "warm")
    r = await client.get("/fn/hecho")
    assert (r.status_code, r.headers["x-path"], r.content) == (200, "/", b"")
    assert r.headers["x-function-abi"] == "http"
    described = (await client.get("/v1/functions/hecho", headers=AUTH)).json()
    assert described["versions"][-1]["granted_imports"] == version["granted_imports"]
    metrics = (await client.get("/metrics")).text
    assert 'unifaas_invocations_total{abi="http",function="hecho",outcome="ok"' in metrics
    assert 'unifaas_invocation_vm_seconds_count{abi="http",function="hecho"} 2.0' in metrics


@pytest.mark.parametrize(
    ("fixture", "status", "kind"),
    [
        ("silent", 502, "bad_response"),
        ("flood", 500, "output_too_large"),
        ("denied", 500, "trap"),
        ("trap", 500, "trap"),
        ("spin", 504, "timeout"),
        ("wait", 504, "timeout"),
    ],
)
async def test_each_misbehaviour_has_its_answer(
    client: httpx.AsyncClient, fixture: str, status: int, kind: str
) -> None:
    # A flood reaches its cap (4 MiB) in 64 writes of 64 KiB, each slow to convert.
    r = await deploy(
        client, fixture, component(fixture), timeout_s=30 if fixture == "flood" else 0.5
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/fn/{fixture}", content=b"x")
    assert (r.status_code, r.json()["error"]["kind"]) == (status, kind), r.text
    if fixture == "denied":
        assert "wasi:sockets/instance-network" in r.json()["error"]["message"]
    if fixture == "silent":
        assert r.json()["error"]["reason"] == "no_response"
    r = await deploy(client, "after", component("hello"))
    assert (await client.get("/fn/after")).status_code == 201  # the platform serves on


@pytest.mark.parametrize(
    ("wasm", "reason"),
    [
        (lambda: component("unknown"), "unsupported_import"),
        (lambda: bytes(wasmtime.wat2wasm("(component)")), "no_http_handler"),
    ],
)
async def test_components_it_cannot_serve_are_refused_at_deploy(
    client: httpx.AsyncClient, wasm: Any, reason: str
) -> None:
    r = await deploy(client, "refused", wasm())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["kind"], error["reason"]) == ("invalid_module", reason)
    if reason == "unsupported_import":
        assert "test:fixtures/custom" in error["message"]


async def test_a_component_reads_a_fresh_copy_of_its_files_bundle(
    client: httpx.AsyncClient,
) -> None:
    r = await deploy(client, "cfiles", component("files"), pack_files({"hello.txt": b"hi"}))
    assert r.status_code == 201, r.text
    for _ in range(2):
        r = await client.get("/fn/cfiles")
        assert (r.status_code, r.content) == (200, b"fresh denied hi"), r.text


async def test_a_component_is_http_only(client: httpx.AsyncClient) -> None:
    r = await deploy(client, "wagi-c", component("hello"), abi="wagi")
    assert (r.status_code, r.json()["error"]["kind"]) == (400, "invalid_config")
    r = await deploy(client, "core-http", bytes(wasmtime.wat2wasm("(module)")), abi="http")
    assert (r.status_code, r.json()["error"]["kind"]) == (400, "invalid_config")
