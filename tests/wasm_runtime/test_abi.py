"""The raw and WAGI ABIs: request mapping, CGI output parsing, and cgi.wat end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given
from hypothesis import strategies as st

from wasm_runtime.abi import (
    CGI_HEADER_BLOCK_MAX_BYTES,
    CgiResponse,
    parse_cgi_output,
    raw_invocation,
    raw_response,
    wagi_invocation,
)
from wasm_runtime.errors import BadCgiResponse
from wasm_runtime.runner import FunctionRuntime

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def wagi(**overrides: object) -> dict[str, str]:
    kwargs: dict[str, object] = {
        "method": "post",
        "path_info": "/a%20b/c",
        "query_string": "x=1&name=J%C3%B6rg+M&&flag",
        "headers": [
            ("Content-Type", "application/json"),
            ("Content-Length", "2"),
            ("Host", "example.com:8080"),
            ("X-Custom-Thing", "one"),
            ("x-custom-thing", "two"),
            ("User-Agent", "pytest"),
        ],
        "body": b"{}",
        "script_name": "/fn/cgi",
        "server_name": "gateway.local",
        "server_port": 8080,
        "remote_addr": "10.0.0.7",
    }
    kwargs.update(overrides)
    request = wagi_invocation(**kwargs)  # type: ignore[arg-type]
    env = dict(request.env)
    assert len(env) == len(request.env), "every variable appears once"
    return env


def test_wagi_cgi_variables() -> None:
    env = wagi()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/fn/cgi"
    assert env["X_MATCHED_ROUTE"] == "/fn/cgi"
    assert env["PATH_INFO"] == "/a b/c"
    assert env["X_RAW_PATH_INFO"] == "/a%20b/c"
    assert env["QUERY_STRING"] == "x=1&name=J%C3%B6rg+M&&flag"
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == "2"
    assert env["SERVER_NAME"] == "gateway.local"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REMOTE_ADDR"] == "10.0.0.7"
    assert env["X_FULL_URL"] == "http://example.com:8080/fn/cgi/a%20b/c?x=1&name=J%C3%B6rg+M&&flag"


def test_wagi_http_headers() -> None:
    env = wagi()
    assert env["HTTP_X_CUSTOM_THING"] == "one, two"
    assert env["HTTP_USER_AGENT"] == "pytest"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_content_length_is_the_body_length() -> None:
    env = wagi(headers={"Content-Length": "999"}, body=b"12345")
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == ""


def test_header_names_with_underscores_are_dropped() -> None:
    env = wagi(headers={"X_Forwarded_For": "spoof", "X-Forwarded-For": "1.2.3.4"})
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_credentials_are_withheld_unless_forwarded() -> None:
    headers = {"Authorization": "Bearer s3cret", "Proxy-Authorization": "Basic x"}
    env = wagi(headers=headers)
    assert env["AUTH_TYPE"] == "Bearer"
    assert "s3cret" not in repr(env)
    env = wagi(headers=headers, forward_authorization=True)
    assert env["HTTP_AUTHORIZATION"] == "Bearer s3cret"


def test_query_becomes_args_after_base_args() -> None:
    request = wagi_invocation(
        "GET", "", "x=1&name=J%C3%B6rg+M&&flag", {}, b"",
        script_name="/fn/cgi", server_name="h", server_port="80", remote_addr="::1",
        base_args=("--verbose",),
    )  # fmt: skip
    assert request.args == ("--verbose", "x=1", "name=Jörg M", "flag")
    assert request.stdin == b""


def test_base_env_is_kept_but_cgi_variables_win() -> None:
    env = wagi(base_env=[("API_URL", "http://api"), ("REQUEST_METHOD", "FAKE")])
    assert env["API_URL"] == "http://api"
    assert env["REQUEST_METHOD"] == "POST"


def test_request_to_invocation() -> None:
    request = raw_invocation(b"body", base_env=[("A", "1")], base_args=["x"])
    inv = request.invocation()
    assert (inv.stdin, inv.args, inv.env) == (b"body", ("x",), (("A", "1"),))


def test_raw_response() -> None:
    assert raw_response(0, b"out") == CgiResponse(
        200, [("Content-Type", "application/octet-stream")], b"out"
    )
    assert raw_response(3, b"").status == 500


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_parse_cgi_output(eol: bytes) -> None:
    out = eol.join([b"Content-Type: text/html", b"Status: 404 Not Found", b"X-A:  b ", b""])
    response = parse_cgi_output(out + eol + b"<p>gone</p>\n\nstill body: yes\n")
    assert response.status == 404
    assert response.headers == [("Content-Type", "text/html"), ("X-A", "b")]
    assert response.body == b"<p>gone</p>\n\nstill body: yes\n"


def test_location_without_status_redirects() -> None:
    response = parse_cgi_output(b"Location: https://example.com/\n\n")
    assert (response.status, response.body) == (302, b"")
    assert response.headers == [("Location", "https://example.com/")]
    explicit = parse_cgi_output(b"Location: /x\nStatus: 301\n\n")
    assert explicit.status == 301


def test_defaults() -> None:
    response = parse_cgi_output(b"X-Only: 1\n\nhello")
    assert response.status == 200
    assert ("Content-Type", "text/plain") in response.headers
    assert parse_cgi_output(b"\n").headers == []  # no body, no default type


@pytest.mark.parametrize(
    ("out", "why"),
    [
        (b"", "wrote nothing"),
        (b"Hello from unifaas!\n", "no blank line"),
        (b"Content-Type: text/plain", "no blank line"),
        (b"not a header\n\nbody", "malformed CGI header line"),
        (b"Bad Name: x\n\n", "malformed CGI header line"),
        (b"X: 1\n continued\n\n", "malformed CGI header line"),
        (b"Status: teapot\n\n", "invalid CGI Status"),
        (b"Status: 999\n\n", "invalid CGI Status"),
        (b"X: a\rb\n\n", "control character"),
        (b"X: " + b"a" * CGI_HEADER_BLOCK_MAX_BYTES + b"\n\n", "first 65536 bytes"),
    ],
)
def test_malformed_cgi_output(out: bytes, why: str) -> None:
    with pytest.raises(BadCgiResponse) as info:
        parse_cgi_output(out)
    assert why in info.value.message
    assert info.value.raw == out[:256]


@given(st.binary(max_size=300))
def test_only_bad_cgi_response_escapes(out: bytes) -> None:
    try:
        response = parse_cgi_output(out)
    except BadCgiResponse:
        return
    assert 100 <= response.status <= 599


@pytest.fixture(scope="module")
def runtime() -> Iterator[FunctionRuntime]:
    rt = FunctionRuntime()
    yield rt
    rt.close()


def test_cgi_function_end_to_end(runtime: FunctionRuntime) -> None:
    fn = runtime.load(
        bytes(wasmtime.wat2wasm((FUNCTIONS / "cgi" / "cgi.wat").read_text())),
        precompiled=False,
        name="/fn/cgi",
    )
    request = wagi_invocation(
        "PUT", "/items/7", "a=1&b=two%20words", {"X-Trace": "abc"}, b"payload",
        script_name="/fn/cgi", server_name="gw", server_port=80, remote_addr="127.0.0.1",
        base_env=[("MODE", "test")],
    )  # fmt: skip
    result = runtime.invoke(fn, request.invocation())
    assert result.ok
    response = parse_cgi_output(result.stdout)
    assert response.status == 201
    assert response.headers == [("Content-Type", "text/plain")]
    lines = response.body.decode().splitlines()
    for expected in (
        "MODE=test",
        "REQUEST_METHOD=PUT",
        "PATH_INFO=/items/7",
        "QUERY_STRING=a=1&b=two%20words",
        "CONTENT_LENGTH=7",
        "HTTP_X_TRACE=abc",
    ):
        assert expected in lines
    assert lines[-3:] == ["/fn/cgi", "a=1", "b=two words"]
