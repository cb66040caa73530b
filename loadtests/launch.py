"""Run a server (``unifaas up`` or the bench baseline) as a child process until it is healthy.

Used by the platform bench and the end-to-end tests; the child is stopped
(SIGTERM, then SIGKILL by pid) on every way out of the ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.errors import LaunchError

START_DEADLINE_S = 180.0
STOP_WAIT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLI = [sys.executable, "-m", "gateway.cli"]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    def cli(
        self, *args: str, stdin: bytes = b"", cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the ``unifaas`` CLI against this server (its URL, state dir and token)."""
        return subprocess.run(
            [*CLI, *args],
            input=stdin,
            capture_output=True,
            env=self.env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, its output in ``log``, stopped (and its group killed) on the way out."""
    with log.open("wb") as out:
        # A group of its own: if it must be killed, its QEMUs and Redis go with it (a
        # killed platform cannot stop them; bench density once left 115 behind).
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    # Appended through the child's own file: it shares the offset.
                    out.write(f"\n[launch] not stopped in {STOP_WAIT_S:g} s: killed\n".encode())
                    out.flush()
                    proc.kill()
                    proc.wait()
            # Whatever it left running (it was killed, or crashed) goes with its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until ``url``/healthz answers; LaunchError if the child exits or takes too long."""
    what = " ".join(str(a) for a in proc.args[1:4]) if isinstance(proc.args, list) else "server"
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            raise LaunchError(f"{what} exited early; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise LaunchError(f"{what} did not start; see {log}")
        time.sleep(0.2)


@contextlib.contextmanager
def serving(argv: list[str], url: str, env: dict[str, str], log: Path) -> Iterator[Served]:
    with running(argv, env, log) as proc:
        wait_healthy(proc, url, log)
        yield Served(url, proc, env, log)


@contextlib.contextmanager
def platform_process(
    state_dir: Path, *, max_vms: int = 8, extra_env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``unifaas up`` on a free port with its own state dir (and so its own Redis)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "UNIFAAS_STATE_DIR": str(state_dir),
        "UNIFAAS_URL": url,
        **(extra_env or {}),
    }
    argv = [
        sys.executable,
        "-m",
        "gateway.cli",
        "up",
        "--port",
        str(port),
        "--max-vms",
        str(max_vms),
    ]
    with serving(argv, url, env, state_dir.parent / f"{state_dir.name}-up-{port}.log") as s:
        yield s
