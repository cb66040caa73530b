"""A developer's day through the CLI against ``unifaas up``: status as a person reads it,
logs followed as calls come, and a function rebuilt and redeployed as its source changes."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from loadtests.launch import CLI
from tests.platforms import LivePlatform

pytestmark = pytest.mark.vm
WAIT_S = 120


def lines_of(proc: subprocess.Popen[bytes]) -> queue.Queue[str]:
    """The process's stdout lines, as they come (a thread reads them)."""
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line.decode())

    threading.Thread(target=read, daemon=True).start()
    return out


def _ctrl_c_stops_it() -> None:
    # A job started in the background by a shell without job control (nohup ... &, some CI
    # runners) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler: give the child the default, as a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, cwd: Path | None = None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_ctrl_c_stops_it,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, then its exit code (the process is killed if it outlives 30 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def test_status_reads_as_text_not_python(platform: LivePlatform, modules: dict[str, Path]) -> None:
    assert platform.cli("deploy", "stat-echo", str(modules["echo"])).returncode == 0
    assert platform.cli("invoke", "stat-echo", "--data", "x").returncode == 0
    text = platform.cli("status").stdout.decode()
    assert "{" not in text and "'" not in text and "None" not in text
    assert "available_mib" in text and "stat-echo@1" in text


def test_logs_follow_prints_calls_as_they_come(
    platform: LivePlatform, modules: dict[str, Path]
) -> None:
    assert platform.cli("deploy", "follow-echo", str(modules["echo"])).returncode == 0
    proc = start("logs", "follow-echo", "-f", env=platform.served.env)
    try:
        lines = lines_of(proc)
        for body in ("one", "two"):
            assert platform.cli("invoke", "follow-echo", "--data", body).returncode == 0
        seen = []
        deadline = time.monotonic() + WAIT_S
        while len([line for line in seen if " ok " in line]) < 2:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        assert seen[0].split()[:2] == ["ID", "VERSION"]
    finally:
        assert stop(proc) == 130


def test_watch_redeploys_when_the_source_changes(platform: LivePlatform, tmp_path: Path) -> None:
    assert platform.cli("new", "watched", "--template", "wat", cwd=tmp_path).returncode == 0
    here = tmp_path / "watched"
    proc = start("watch", "--interval", "0.2", cwd=here, env=platform.served.env)

    def answer() -> dict[str, object] | None:
        got = platform.cli("invoke", "watched")
        return json.loads(got.stdout) if got.returncode == 0 else None

    def until(language: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while (got := answer()) is None or got["language"] != language:
            assert time.monotonic() < deadline, f"never answered as {language}: {got}"
            time.sleep(0.5)

    try:
        until("wat")
        source = here / "app.wat"
        source.write_text(source.read_text().replace('\\"wat\\"', '\\"edited wat\\"'))
        until("edited wat")
        assert platform.cli("describe", "watched", "--json").returncode == 0
    finally:
        assert stop(proc) == 130
