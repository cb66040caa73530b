"""Bad requests get a documented answer in the one error body: the deploy form read as its
schema says, FastAPI's and Starlette's own refusals translated, limits on heads and parts,
names checked, and every /v1 route behind the token (found by walking the route table)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.errors import ERROR_TABLE
from tests.conftest import wasm
from tests.gateway.conftest import AUTH, DEPLOY_LIMIT, HEADER_LIMIT, TOKEN, deploy
from wasm_runtime.bundle import pack_files


def _error(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["kind"] == kind, r.text
    return error


async def test_unknown_routes_and_methods_answer_in_the_error_body(
    client: httpx.AsyncClient,
) -> None:
    _error(await client.get("/nowhere", headers=AUTH), 404, "not_found")
    r = await client.put("/v1/functions/x", headers=AUTH)
    _error(r, 405, "method_not_allowed")
    # Every method served at the path, not only the first route's.
    assert r.headers["allow"] == "GET, POST, DELETE"
    r = await client.request("TRACE", "/fn/echo")
    _error(r, 405, "method_not_allowed")
    assert "OPTIONS" in r.headers["allow"] and "POST" in r.headers["allow"]


async def test_parameters_of_the_wrong_shape_get_422_naming_them(
    client: httpx.AsyncClient,
) -> None:
    await deploy(client, "echo", "echo")
    for query in ("limit=abc", "limit=0", f"limit={10**6}"):
        r = await client.get(f"/v1/functions/echo/invocations?{query}", headers=AUTH)
        error = _error(r, 422, "invalid_request")
        assert [p["where"] for p in error["errors"]] == ["query.limit"]
    r = await client.post("/v1/functions/echo/rollback?to=zero", headers=AUTH)
    assert _error(r, 422, "invalid_request")["errors"][0]["where"] == "query.to"


async def test_deploy_parts_may_be_files_or_plain_fields(client: httpx.AsyncClient) -> None:
    # config as a file part, module as a file: deployed.
    r = await client.post(
        "/v1/functions/a",
        headers=AUTH,
        files={"module": ("m.wasm", wasm("echo")), "config": ("c.json", b'{"timeout_s": 2}')},
    )
    assert r.status_code == 201 and r.json()["config"]["timeout_s"] == 2.0
    # module as a plain field is read as the module (and WAT text is refused as such).
    r = await client.post("/v1/functions/b", headers=AUTH, data={"module": "(module)"})
    assert "WAT" in _error(r, 400, "invalid_module")["message"]
    # files as a plain field is read as the bundle, not refused as a shape error.
    r = await client.post(
        "/v1/functions/c",
        headers=AUTH,
        files={"module": ("m.wasm", wasm("files"))},
        data={"files": "not a tar"},
    )
    assert "tar" in _error(r, 400, "invalid_config")["message"]
    r = await client.post(
        "/v1/functions/c",
        headers=AUTH,
        files={"module": ("m.wasm", wasm("files")), "files": ("f.tar", pack_files({"a": b"1"}))},
    )
    assert r.status_code == 201 and r.json()["files_sha256"]


async def test_deploy_forms_of_the_wrong_shape(client: httpx.AsyncClient) -> None:
    module = {"module": ("m.wasm", wasm("echo"))}
    r = await client.post("/v1/functions/x", headers=AUTH, files=module, data={"extra": "1"})
    error = _error(r, 422, "invalid_request")
    assert error["errors"][0]["where"] == "form.extra"
    r = await client.post("/v1/functions/x", headers=AUTH, data={"config": "{}"})
    assert _error(r, 422, "invalid_request")["errors"] == [
        {"where": "form.module", "what": "required"}
    ]
    r = await client.post("/v1/functions/x", headers=AUTH, json={"module": "x"})
    _error(r, 422, "invalid_request")  # not a form at all: no module part
    twice = [("module", ("a", wasm("echo"))), ("module", ("b", wasm("echo")))]
    r = await client.post("/v1/functions/x", headers=AUTH, files=twice)
    assert "more than once" in _error(r, 422, "invalid_request")["message"]
    r = await client.post(
        "/v1/functions/x",
        headers={**AUTH, "Content-Type": "multipart/form-data"},
        content=b"--zz\r\ngarbage",
    )
    assert "boundary" in _error(r, 400, "bad_request")["message"]
    r = await client.post("/v1/functions/x", headers=AUTH, files={"module": ("m", b"")})
    assert "module" in _error(r, 400, "invalid_config")["message"]
    # A part over the deploy limit, as a file and as a plain field.
    big = b"\0asm" + b"\0" * DEPLOY_LIMIT
    r = await client.post("/v1/functions/x", headers=AUTH, files={"module": ("m", big)})
    _error(r, 413, "body_too_large")
    plain = {"module": "a" * (DEPLOY_LIMIT + 1)}
    r = await client.post("/v1/functions/x", headers=AUTH, data=plain)
    _error(r, 413, "body_too_large")
    # Too many parts: refused before any is read.
    many = {f"p{i}": "1" for i in range(10)}
    r = await client.post("/v1/functions/x", headers=AUTH, files=module, data=many)
    _error(r, 400, "bad_request")
    assert (await client.get("/v1/functions", headers=AUTH)).json() == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"timeout_s": "ten"}, "timeout_s"),
        ({"max_vms": True}, "max_vms"),
        ({"env": {"A": 1}}, "env.A"),
        ({"env": {"1BAD": "hunter2"}}, "env.'1BAD'"),
        ({"env": {"A": "x\0y"}}, "env.A"),
        ({"abi": "cgi"}, "abi"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
async def test_config_fields_of_the_wrong_type_or_name_are_named(
    client: httpx.AsyncClient, config: dict[str, Any], field: str
) -> None:
    r = await client.post(
        "/v1/functions/x",
        headers=AUTH,
        files={"module": ("m.wasm", wasm("echo"))},
        data={"config": json.dumps(config)},
    )
    error = _error(r, 400, "invalid_config")
    assert error["message"].startswith(f"{field}:"), error
    assert "hunter2" not in r.text  # env values may be secrets: never echoed


async def test_a_function_name_out_of_shape_is_refused(client: httpx.AsyncClient) -> None:
    for name in ("Upper", "-lead", "a" * 64, "sp%20ace"):
        r = await client.post(
            f"/v1/functions/{name}", headers=AUTH, files={"module": ("m", wasm("echo"))}
        )
        assert "name" in _error(r, 400, "invalid_config")["message"]


async def test_a_request_head_over_the_limit_gets_431_on_any_route(
    client: httpx.AsyncClient,
) -> None:
    big = {"X-Padding": "p" * HEADER_LIMIT}
    for method, path in (("GET", "/healthz"), ("POST", "/fn/echo"), ("GET", "/nowhere")):
        r = await client.request(method, path, headers=big)
        assert _error(r, 431, "headers_too_large")["message"].endswith(f"{HEADER_LIMIT} bytes")
    assert (await client.get("/healthz", headers={"X-Padding": "p" * 100})).status_code == 200


def _filled(path: str) -> str:
    return path.replace("{name}", "x").replace("{invocation_id}", "x").replace("{path}", "y")


async def test_every_management_route_refuses_a_missing_or_wrong_token(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    walked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = await client.request(method.upper(), _filled(path), headers=headers)
                _error(r, 401, "unauthorized")
                assert r.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in r.text
            walked += 1
    assert walked >= 8  # every /v1 operation, so a new route cannot forget the token


async def test_the_schema_documents_every_answer_in_the_error_body(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    invoke_statuses: set[int] = set()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)
            assert {"422", "500"} <= set(responses), (path, method)
            if path.startswith("/v1"):
                assert "401" in responses, (path, method)
            if path.startswith("/fn/"):
                assert "default" in responses
                invoke_statuses |= {int(s) for s in responses if s.isdigit()}
    # A call crosses every layer: all the table's statuses but the management-only ones.
    management_only = {405, 409}  # 409: async results and dead-letters only
    expected = {status for status, _ in ERROR_TABLE.values()} - management_only
    assert expected <= invoke_statuses
    deploy_responses = schema["paths"]["/v1/functions/{name}"]["post"]["responses"]
    assert {"201", "400", "413"} <= set(deploy_responses)
    form = schema["paths"]["/v1/functions/{name}"]["post"]["requestBody"]["content"]
    assert form["multipart/form-data"]["schema"]["required"] == ["module"]
