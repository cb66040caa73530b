"""The host side of the VM wall, read from ``/proc`` of the real QEMUs of a running platform:
each QEMU under ids of its own, and with one QEMU's ids another cannot be signalled or read."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from loadtests.chaos import qemu_children
from tests.platforms import LivePlatform
from unikernel.vmids import VMUser, subordinate_range

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


def vm_user_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("unifaas-vm")
    return entry.pw_uid, entry.pw_gid


def cgroup_dirs(pid: int) -> list[Path]:
    """The process's own cgroup directories (v1: one per controller hierarchy)."""
    v1, v2 = [], []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if line.startswith("0::"):
            v2.append(Path(f"/sys/fs/cgroup{path}"))
        elif controllers in ("memory", "pids"):
            v1.append(Path(f"/sys/fs/cgroup/{controllers}{path}"))
    return v1 or v2  # a v1 host lists the unified hierarchy too ("0::/"), unused


def as_ids(uid: int, gid: int, statement: str) -> str:
    """Run one Python statement under a QEMU's ids (no groups); its error output."""
    done = subprocess.run(
        ["/usr/bin/python3", "-c", f"import os; {statement}"],
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        cwd="/",
        timeout=30,
        check=False,
    )
    return done.stderr.decode()


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
    # The bound VM and the generic idle one (UNIFAAS_IDLE_TARGET=1).
    assert len(pids) >= 2, "a running platform with a bound VM and an idle one"
    limits = []
    ids = subordinate_range(VMUser("unifaas-vm", *vm_user_ids()))
    own: dict[int, tuple[int, int]] = {}
    for pid in pids:
        fields = status_fields(pid)
        uids = {int(u) for u in fields["Uid"].split()}
        gids = {int(g) for g in fields["Gid"].split()}
        # Real, effective, saved and fs ids all one, its own, from the VM user's range.
        assert len(uids) == len(gids) == 1, fields
        (uid,), (gid,) = uids, gids
        assert ids.first_uid <= uid < ids.first_uid + ids.count, uid
        assert gid - ids.first_gid == uid - ids.first_uid, (uid, gid)
        assert fields["Groups"].split() in ([], [str(gid)]), fields["Groups"]  # its own
        own[pid] = (uid, gid)
        assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1"
        # Its root is its own run directory: nothing else of the host's tree.
        root = os.readlink(f"/proc/{pid}/root")
        assert root != "/" and Path(root).name.startswith("unifaas-pool-"), root
        # Its run directory and its cgroup are its own.
        info = os.stat(root)
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (uid, gid, 0o700)
        for group in cgroup_dirs(pid):
            assert (group.stat().st_uid, group.stat().st_gid) == (uid, gid), group
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
    # The bound VM's limit follows the function: 2 calls of 64 MiB and its artifact (under
    # 1 MiB, counted whole) leave 287 unused.
    assert (CEILING_MIB - (BUDGET_MIB - 2 * 64 - 1)) * MIB in limits
    # No two VMs share their ids; with one QEMU's, another cannot be signalled or read.
    assert len(set(own.values())) == len(own)
    (pid_a, (uid, gid)), (pid_b, _) = list(own.items())[:2]
    assert as_ids(uid, gid, f"os.kill({pid_a}, 0)") == ""  # its own: allowed
    for attempt in (
        f"os.kill({pid_b}, 0)",  # the kernel's check for any signal, sent none
        f"open('/proc/{pid_b}/environ').read()",
        f"os.listdir('{os.readlink(f'/proc/{pid_b}/root')}')",
    ):
        assert "PermissionError" in as_ids(uid, gid, attempt), attempt

    with platform.http() as http:
        confinement = http.get("/v1/status").json()["confinement"]
    assert confinement["not_applied"] == []
    assert confinement["user"].startswith("a uid and gid per VM from ids ")
    assert confinement["user"].endswith("(subordinate ids of unifaas-vm)")
    assert confinement["chroot"] is True
    assert confinement["seccomp"].startswith("on,") and confinement["cgroup"] in ("v1", "v2")
    assert confinement["memory_limit_mib"] == CEILING_MIB
    assert platform.cli("delete", "jailed").returncode == 0
