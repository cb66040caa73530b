"""The host side of the VM wall, read from ``/proc`` of the real QEMUs of a running platform."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from loadtests.chaos import qemu_children
from tests.platforms import LivePlatform

pytestmark = pytest.mark.vm

MIB = 1024 * 1024
# Defaults: 512 MiB guest + 64 MiB translation cache + 48 MiB QEMU; 416 MiB of it for calls.
CEILING_MIB, BUDGET_MIB = 624, 416


def status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def memory_limit(pid: int) -> int:
    """The memory limit of the process's cgroup, v1 or v2."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            text = Path(f"/sys/fs/cgroup{line[3:]}/memory.max").read_text().strip()
            return -1 if text == "max" else int(text)
    return -1


def test_every_qemu_is_confined(platform: LivePlatform, modules: dict[str, Path]) -> None:
    out = platform.cli(
        "deploy", "jailed", str(modules["echo"]), "--concurrency", "2", "--memory", "64"
    )
    assert out.returncode == 0, out.stderr
    assert platform.cli("invoke", "jailed", "--data", "in").stdout == b"in"
    # The version's template is made by a QEMU of its own, confined alike (the run directory of
    # which is named for it): wait for it so that the pids below do not end while being read.
    with platform.http() as http:
        deadline = time.monotonic() + 120
        while http.get("/v1/status").json()["pool"]["templates_making"]:
            assert time.monotonic() < deadline, "the template of jailed@1 was not made"
            time.sleep(0.2)

    pids = qemu_children(platform.proc.pid)
    assert pids, "a running platform with a bound VM has QEMUs"
    limits = []
    for pid in pids:
        fields = status_fields(pid)
        assert all(int(uid) != 0 for uid in fields["Uid"].split()), fields["Uid"]
        assert all(int(gid) != 0 for gid in fields["Gid"].split()), fields["Gid"]
        assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1"
        # Its root is its own run directory: nothing else of the host's tree.
        root = os.readlink(f"/proc/{pid}/root")
        assert root != "/" and Path(root).name.startswith("unifaas-pool-"), root
        # No descriptor of the host: its log, its console, its RAM file, /dev/null,
        # its two sockets (agent, QMP) and QEMU's own event fds.
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert sum(link.startswith("socket:") for link in links) == 2, links
        for link in links:
            assert link == "/dev/null" or link.startswith(
                (root + "/", "/dev/shm/unifaas-tpl-", "anon_inode:", "socket:")
            ), link
        limit = memory_limit(pid)
        assert 0 < limit <= CEILING_MIB * MIB
        limits.append(limit)
    # The bound VM's limit follows the function: 2 calls of 64 MiB leave 288 unused.
    assert (CEILING_MIB - (BUDGET_MIB - 2 * 64)) * MIB in limits

    with platform.http() as http:
        confinement = http.get("/v1/status").json()["confinement"]
    assert confinement["not_applied"] == []
    assert confinement["user"] == "unifaas-vm" and confinement["chroot"] is True
    assert confinement["seccomp"].startswith("on,") and confinement["cgroup"] in ("v1", "v2")
    assert confinement["memory_limit_mib"] == CEILING_MIB
    assert platform.cli("delete", "jailed").returncode == 0
