"""A real platform for end-to-end tests: ``unifaas up`` in a subprocess (its own Redis,
uvicorn socket and microVMs), driven through its CLI and plain HTTP. One is shared by
the session's end-to-end tests (``platform`` in tests/gateway/conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.launch import Served, platform_process


@dataclass
class LivePlatform:
    served: Served
    state_dir: Path

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.served.proc

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def cli(
        self, *args: str, stdin: bytes = b"", cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return self.served.cli(*args, stdin=stdin, cwd=cwd, timeout=timeout)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {self.token}"}
        )


@contextlib.contextmanager
def running_platform(state_dir: Path, max_vms: int = 3) -> Iterator[LivePlatform]:
    extra = {"UNIFAAS_IDLE_TARGET": "1", "UNIFAAS_QUEUE_TIMEOUT_S": "60"}
    with platform_process(state_dir, max_vms=max_vms, extra_env=extra) as served:
        yield LivePlatform(served, state_dir)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]
