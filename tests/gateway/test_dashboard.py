"""The live dashboard in headless Chromium against a real platform.

``unifaas up`` in a subprocess, echo and a trapping function deployed, traffic
in a background thread while Chromium shows ``/dashboard``. Chromium is driven
over its DevTools pipe (``--remote-debugging-pipe``: JSON messages on fds 3/4,
no extra dependency) so the page polls in real time: two DOM snapshots a few
seconds apart prove it updates itself without a reload. A plain ``--dump-dom``
run checks the page also renders in one shot. The screenshot is kept in
``artifacts/dashboard.png``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.launch import Served, platform_process
from tests.conftest import wasm

pytestmark = pytest.mark.vm

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]
WIDTH, HEIGHT = 1280, 900


def chromium_binary() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is not installed (scripts/bootstrap.sh installs it)"
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, user_data_dir: Path, log: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        argv = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"]
        # Chromium reads commands on fd 3 and writes replies on fd 4.
        shell = f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", shell, "bash", *argv, "--remote-debugging-pipe", "about:blank"],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._buffer = b""
        self.session = ""

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, f"{method}: {reply['error']}"
                    return dict(reply["result"])
            assert time.monotonic() < deadline, f"no DevTools reply to {method}"
            chunk = os.read(self._from_chrome, 1 << 20)
            assert chunk, "chromium closed its DevTools pipe"
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)

    def dom(self) -> str:
        result = self.call(
            "Runtime.evaluate", expression="document.documentElement.outerHTML", returnByValue=True
        )
        return str(result["result"]["value"])

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session = ""
            self.call("Browser.close", timeout=5)
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def devtools(tmp: Path) -> Iterator[DevTools]:
    browser = DevTools(tmp / "chromium-profile", tmp / "chromium.log")
    try:
        yield browser
    finally:
        browser.close()


@contextlib.contextmanager
def traffic(url: str) -> Iterator[dict[str, int]]:
    """Warm echo calls and an occasional trap until the block ends."""
    counts = {"echo": 0, "trap": 0}
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            n = 0
            while not stop.is_set():
                r = http.post("/fn/echo", content=f"ping {n}".encode())
                assert r.status_code == 200, r.text
                counts["echo"] += 1
                if n % 25 == 0:
                    assert http.post("/fn/mis").status_code == 500
                    counts["trap"] += 1
                n += 1
                time.sleep(0.02)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield counts
    finally:
        stop.set()
        worker.join(60)


def chart_points(dom: str) -> dict[str, int]:
    points = {}
    for tag in re.findall(r"<svg[^>]*>", dom):
        name = re.search(r'id="(chart-[a-z]+)"', tag)
        count = re.search(r'data-points="(\d+)"', tag)
        if name and count:
            points[name.group(1)] = int(count.group(1))
    return points


def total(dom: str, field: str) -> int:
    found = re.search(rf'id="t-{field}"[^>]*>([\d,]+)<', dom)
    assert found, f"no total {field} in the page"
    return int(found.group(1).replace(",", ""))


def assert_live_page(dom: str) -> dict[str, int]:
    points = chart_points(dom)
    assert set(points) == {"chart-pool", "chart-latency", "chart-rate"}, points
    assert all(n > 1 for n in points.values()), points
    assert 'data-state="live"' in dom
    assert re.search(r'<tr class="function" data-function="echo@\d+"', dom), "no echo row"
    assert re.search(r'<li class="error" data-kind="trap" data-function="mis"', dom), "no trap"
    assert "<path" in dom  # lines or areas drawn, not only axes
    return points


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("state")
    modules = tmp_path_factory.mktemp("modules")
    extra = {"UNIFAAS_IDLE_TARGET": "1", "UNIFAAS_QUEUE_TIMEOUT_S": "60"}
    with platform_process(state, max_vms=3, extra_env=extra) as served:
        for name, args in (("echo", []), ("mis", ["--arg", "trap"])):
            module = modules / f"{name}.wasm"
            module.write_bytes(wasm("echo" if name == "echo" else "misbehave"))
            out = served.cli("deploy", name, str(module), *args)
            assert out.returncode == 0, out.stderr
        # Warm both up first: a cold start under TCG, competing with Chromium's
        # own start-up for two cores, can take longer than the page is watched.
        assert (
            httpx.post(served.url + "/fn/echo", content=b"warm-up", timeout=120).status_code == 200
        )
        assert httpx.post(served.url + "/fn/mis", timeout=120).status_code == 500
        yield served


def test_dashboard_updates_live_in_chromium(platform: Served, tmp_path: Path) -> None:
    page = platform.url + "/dashboard"
    with traffic(platform.url) as counts, devtools(tmp_path) as browser:
        time.sleep(2)  # some calls before the page opens: the first poll already has data
        browser.open(page)
        time.sleep(4)
        first = browser.dom()
        time.sleep(4)
        second = browser.dom()
        shot = browser.screenshot()

    before, after = assert_live_page(first), assert_live_page(second)
    # Same page, no reload: more points and higher counters four seconds later.
    assert all(after[name] > before[name] for name in after), (before, after)
    assert total(second, "invocations") > total(first, "invocations") > 0
    assert total(second, "errors") >= 1
    assert total(second, "restores") >= 1  # the VMs are clones of the snapshot template
    assert counts["echo"] > 10 and counts["trap"] >= 1
    # the rate chart is drawn from counter differences: it shows warm starts per second
    assert re.search(r"warm <b>[\d.]+/s</b>", second)

    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "dashboard.png"
    png.write_bytes(shot)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


def test_dashboard_dump_dom_and_disconnected(platform: Served, tmp_path: Path) -> None:
    """One-shot ``--dump-dom`` (virtual time runs the 1 s polls fast); then a dead URL."""
    argv = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    with traffic(platform.url):
        time.sleep(1)
        out = subprocess.run(
            [*argv, "--virtual-time-budget=6000", "--dump-dom", platform.url + "/dashboard"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert_live_page(out.stdout.decode())

    # The page's own files are served from the gateway; /dashboard/data failing
    # (here: nothing listens) leaves the page up and saying so.
    html = httpx.get(platform.url + "/dashboard").text
    stub = tmp_path / "dashboard.html"
    stub.write_text(html.replace("/dashboard/static/", platform.url + "/dashboard/static/"))
    out = subprocess.run(
        [*argv, "--virtual-time-budget=3000", "--dump-dom", stub.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout.decode()
    assert 'data-state="disconnected"' in dom and ">disconnected<" in dom
    assert 'data-points="0"' in dom
