"""Every example in functions/, built by functions/build.py and called through a real platform.

One ``unifaas up`` (real Redis, real microVMs) for the whole module; each example is
deployed with the CLI the way a user would and checked over plain HTTP.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.launch import Served, platform_process

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parent.parent.parent
FUNCTIONS = ROOT / "functions"


@dataclass
class Platform:
    served: Served
    modules: Path

    @property
    def url(self) -> str:
        return self.served.url

    def deploy(self, name: str, *flags: str, module: str | None = None) -> None:
        wasm = self.modules / f"{module or name}.wasm"
        out = self.served.cli("deploy", name, str(wasm), *flags)
        assert out.returncode == 0, out.stderr.decode()

    def call(
        self, name: str, path: str = "", content: bytes | None = None, **kw: Any
    ) -> httpx.Response:
        """GET /fn/NAME/PATH, or POST when there is a body."""
        method = "GET" if content is None else "POST"
        url = f"{self.url}/fn/{name}{path}"
        return httpx.request(method, url, content=content, timeout=60, **kw)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    modules = tmp_path_factory.mktemp("modules")
    built = subprocess.run(
        [sys.executable, str(FUNCTIONS / "build.py"), "--out", str(modules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    state = tmp_path_factory.mktemp("state")
    extra = {"UNIFAAS_IDLE_TARGET": "1", "UNIFAAS_QUEUE_TIMEOUT_S": "60"}
    with platform_process(state, max_vms=4, extra_env=extra) as served:
        yield Platform(served, modules)


def test_hello_and_echo(platform: Platform) -> None:
    platform.deploy("hello")
    platform.deploy("echo")
    assert platform.call("hello").content == b"Hello from unifaas!\n"
    r = platform.call("echo", content=b"echo me\x00\xff")
    assert r.status_code == 200 and r.content == b"echo me\x00\xff"


def test_cgi_and_files(platform: Platform) -> None:
    platform.deploy("cgi", "--abi", "wagi")
    platform.deploy("files", "--files", str(FUNCTIONS / "files" / "bundle"))
    r = platform.call("cgi", "/a/b?name=ada")
    assert r.status_code == 201 and "PATH_INFO=/a/b" in r.text
    bundle = (FUNCTIONS / "files" / "bundle" / "data.txt").read_bytes()
    assert platform.call("files").content == bundle + b"scratch.txt existed: no\n"


def test_wagi_router(platform: Platform) -> None:
    platform.deploy("wagi-router", "--abi", "wagi")
    r = platform.call("wagi-router", "/hello", params={"name": "Ada L!", "x": "1"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "Hello, Ada L!!\n"
    assert platform.call("wagi-router", "/hello").text == "Hello, world!\n"

    r = platform.call(
        "wagi-router", "/whoami", headers={"User-Agent": "pytest/1", "X-Request-Id": "abc-1"}
    )
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"method": "GET", "user_agent": "pytest/1", "request_id": "abc-1"}

    assert platform.call("wagi-router", "/status/418").status_code == 418
    assert platform.call("wagi-router", "/status/nope").status_code == 400
    r = platform.call("wagi-router", "/old")
    assert r.status_code == 302 and r.headers["location"] == "/fn/wagi-router/hello"
    r = platform.call("wagi-router", "/no/such/page")
    assert r.status_code == 404 and r.text == "not found: /no/such/page\n"


def test_json_transform(platform: Platform) -> None:
    platform.deploy("json-transform")
    r = platform.call("json-transform", content=b'{"label": "x", "numbers": [3, 1.5, -2, 10]}')
    assert r.status_code == 200
    assert r.json() == {"count": 4, "sum": 12.5, "mean": 3.125, "min": -2, "max": 10}
    r = platform.call("json-transform", content=b'{"numbers": []}')
    assert r.json() == {"count": 0, "sum": 0, "mean": None, "min": None, "max": None}
    r = platform.call("json-transform", content=b'{"numbers": [1, "two"]}')
    assert r.status_code == 500 and r.headers["x-exit-code"] == "1"
    assert r.json()["error"] == "bad_request"


def test_static_site(platform: Platform) -> None:
    site = FUNCTIONS / "static-site" / "site"
    platform.deploy("static-site", "--abi", "wagi", "--files", str(site))
    for path in ("", "/", "/index.html"):
        r = platform.call("static-site", path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert r.content == (site / "index.html").read_bytes()
    r = platform.call("static-site", "/style.css")
    assert r.headers["content-type"].startswith("text/css")
    assert r.content == (site / "style.css").read_bytes()
    assert platform.call("static-site", "/missing.html").status_code == 404
    assert platform.call("static-site", "/%2e%2e/etc/passwd").status_code == 404


def test_sha256_known_answers_under_load(platform: Platform) -> None:
    platform.deploy("sha256")
    platform.deploy("sha256-rounds", "--arg", "10000", module="sha256")
    r = platform.call("sha256", content=b"abc")
    assert r.text == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    digest = hashlib.sha256(b"abc").digest()
    for _ in range(9999):
        digest = hashlib.sha256(digest).digest()
    assert platform.call("sha256-rounds", content=b"abc").text == digest.hex() + "\n"

    bodies = [bytes([i]) * (1000 * i + 1) for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda b: platform.call("sha256", content=b), bodies))
    assert [r.text for r in got] == [hashlib.sha256(b).hexdigest() + "\n" for b in bodies]


def test_misbehave_exit_code(platform: Platform) -> None:
    platform.deploy("misbehave", "--arg", "exit", "--arg", "7")
    r = platform.call("misbehave", content=b"")
    assert r.status_code == 500 and r.headers["x-exit-code"] == "7"
