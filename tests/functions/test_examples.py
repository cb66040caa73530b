"""Every example in functions/, built by functions/build.py and called through a real platform.

One ``unifaas up`` (real Redis, real microVMs) for the whole module; each example is
deployed with the CLI the way a user would and checked over plain HTTP.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.chaos import qemu_children
from loadtests.launch import Served, platform_process
from tests.conftest import c_module

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
    (modules / "hostprobe.wasm").write_bytes(c_module("hostprobe"))
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


class _Upstream(http.server.BaseHTTPRequestHandler):
    """What `fetch` fetches: the path echoed back, 404 for /missing; /hold answers once
    the test releases it."""

    held = 0
    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/hold":
            _Upstream.held += 1
            _Upstream.arrived.set()
            _Upstream.release.wait(60)
        payload = b"upstream says " + self.path.encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "text/x-upstream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_counter_counts_each_path_in_its_own_store(platform: Platform) -> None:
    platform.deploy("counter", "--abi", "wagi")
    platform.deploy("counter-b", "--abi", "wagi", module="counter")
    got = [platform.call("counter", "/a").text for _ in range(3)]
    assert got == ["1\n", "2\n", "3\n"]
    r = platform.call("counter", "/b/c")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text == "1\n"
    # Another deployment of the same module counts apart.
    assert platform.call("counter-b", "/a").text == "1\n"
    assert platform.call("counter", "/a").text == "4\n"
    # Concurrent calls, in several VMs: every increment counted once.
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda _: platform.call("counter", "/many"), range(16)))
    assert platform.call("counter", "/many").text == "17\n"


def test_shorten(platform: Platform) -> None:
    platform.deploy("shorten", "--abi", "wagi")
    r = platform.call("shorten", content=b"https://example.com/a/long/path?q=1")
    assert r.status_code == 201
    code = r.text.strip()
    assert code and r.headers["location"] == f"/fn/shorten/{code}"
    r = platform.call("shorten", f"/{code}", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/a/long/path?q=1"
    other = platform.call("shorten", content=b"http://example.org/").text.strip()
    assert other != code
    assert platform.call("shorten", f"/{other}").headers["location"] == "http://example.org/"
    assert platform.call("shorten", "/nosuchcode").status_code == 404
    assert platform.call("shorten", content=b"not a url").status_code == 400


def test_fetch_goes_through_the_host_allow_list(platform: Platform, upstream: int) -> None:
    platform.deploy("fetch", "--abi", "wagi", "--allow-host", f"127.0.0.1:{upstream}")
    url = f"http://127.0.0.1:{upstream}/hello"
    r = platform.call("fetch", params={"url": url})
    assert r.status_code == 200 and r.text == "upstream says /hello"
    assert r.headers["content-type"] == "text/x-upstream"
    r = platform.call("fetch", params={"url": f"http://127.0.0.1:{upstream}/missing"})
    assert r.status_code == 404 and r.text == "upstream says /missing"
    # Another port, another host: not on the list.
    for denied in (f"http://127.0.0.1:{upstream + 1}/x", "http://example.com/"):
        r = platform.call("fetch", params={"url": denied})
        assert r.status_code == 403 and r.text.startswith("host_denied"), denied
    metrics = httpx.get(f"{platform.url}/metrics", timeout=30).text
    assert 'unifaas_hostcalls_total{kind="http",outcome="host_denied"} 2.0' in metrics


def test_python_hello_built_by_componentize_py(platform: Platform) -> None:
    platform.deploy("hello-py", "--timeout", "20")  # an 18 MB component: CPython inside
    r = platform.call("hello-py")
    assert (r.status_code, r.json()) == (200, {"hello": "from Python in a microVM"}), r.text
    assert r.headers["content-type"] == "application/json"
    r = platform.call("hello-py", "/echo", content=b'{"a": 1, "b": [2]}')
    assert (r.status_code, r.json()) == (200, {"echo": {"a": 1, "b": [2]}, "keys": 2})
    r = platform.call("hello-py", "/echo", content=b"not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    assert platform.call("hello-py", "/elsewhere").status_code == 404
    out = platform.served.cli("logs", "hello-py", "--json")
    logs = [record["stderr_tail"] for record in json.loads(out.stdout)]
    assert any("Method_Post /echo" in log for log in logs)  # its stdout is its log


def test_python_fetch_goes_through_the_host_allow_list(platform: Platform, upstream: int) -> None:
    platform.deploy("fetch-py", "--timeout", "20", "--allow-host", f"127.0.0.1:{upstream}")
    r = platform.call("fetch-py", params={"url": f"http://127.0.0.1:{upstream}/py"})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": 200, "length": 17, "start": "upstream says /py"}
    r = platform.call("fetch-py", params={"url": f"http://127.0.0.1:{upstream}/missing"})
    assert (r.status_code, r.json()["status"]) == (200, 404)
    r = platform.call("fetch-py", params={"url": "http://example.com/"})
    assert (r.status_code, r.json()) == (403, {"error": "ErrorCode_HttpRequestDenied"})


def test_javascript_hello_built_by_componentize_js(platform: Platform) -> None:
    platform.deploy("hello-js", "--timeout", "20")  # a 13 MB component: SpiderMonkey inside
    r = platform.call("hello-js")
    assert (r.status_code, r.json()) == (200, {"hello": "from JavaScript in a microVM"}), r.text
    assert r.headers["content-type"] == "application/json"
    r = platform.call("hello-js", "/echo", content=b'{"a": 1, "b": [2]}')
    assert (r.status_code, r.json()) == (200, {"echo": {"a": 1, "b": [2]}, "keys": 2})
    r = platform.call("hello-js", "/echo", content=b"not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    assert platform.call("hello-js", "/elsewhere").status_code == 404
    out = platform.served.cli("logs", "hello-js", "--json")
    assert any("POST /echo" in rec["stderr_tail"] for rec in json.loads(out.stdout))


def test_a_spin_app_runs_unchanged(platform: Platform) -> None:
    # Spin's Python SDK 3.4.1, its key-value store and variables: a 38 MB component.
    platform.deploy("counter-spin", "--timeout", "20", "--env", "GREETING=howdy")
    got = [platform.call("counter-spin", "/a").text for _ in range(3)]
    assert got == ["howdy /a: 1\n", "howdy /a: 2\n", "howdy /a: 3\n"]
    assert platform.call("counter-spin", "/b").text == "howdy /b: 1\n"
    out = platform.served.cli("describe", "counter-spin", "--json")
    version = json.loads(out.stdout)["versions"][-1]
    assert "fermyon:spin/key-value@2.0.0" in version["granted_imports"]
    assert "fermyon:spin/llm@2.0.0" in version["denied_imports"]


def test_secrets_never_shown(platform: Platform) -> None:
    secret = "e2e-secret-7f3a"
    platform.deploy("sec-probe", "--secret", f"TOKEN={secret}", module="hostprobe")
    r = platform.call("sec-probe", content=b"env TOKEN")
    assert r.text == f"ok\n{secret}"
    for command in (["describe", "sec-probe"], ["list"], ["logs", "sec-probe"]):
        for extra in ([], ["--json"]):
            out = platform.served.cli(*command, *extra)
            assert out.returncode == 0, out.stderr
            assert secret.encode() not in out.stdout + out.stderr, command
    assert b"TOKEN" in platform.served.cli("describe", "sec-probe", "--json").stdout


def test_a_vm_killed_after_an_outbound_request_is_not_run_again(
    platform: Platform, upstream: int
) -> None:
    """Fault injection: the VM of a call that has sent a request dies under it. The call
    must not be run again (the request would be sent twice): it gets sandbox_lost."""
    allow = f"127.0.0.1:{upstream}"
    platform.deploy("fetch-hold", "--abi", "wagi", "--allow-host", allow, module="fetch")
    url = f"http://127.0.0.1:{upstream}/hold"
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        call = ex.submit(platform.call, "fetch-hold", params={"url": url})
        assert _Upstream.arrived.wait(60)
        for pid in qemu_children(platform.served.proc.pid):
            os.kill(pid, signal.SIGKILL)
        r = call.result(60)
    _Upstream.release.set()
    assert r.status_code == 503 and r.json()["error"]["kind"] == "sandbox_lost"
    assert "not run again" in r.json()["error"]["message"]
    assert r.headers["x-retries"] == "0"
    assert _Upstream.held == 1
    # The platform keeps serving, on new VMs.
    r = platform.call("fetch-hold", params={"url": f"http://127.0.0.1:{upstream}/after"})
    assert r.status_code == 200 and r.text == "upstream says /after"
