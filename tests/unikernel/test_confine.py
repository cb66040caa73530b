"""Host confinement: cgroup trees (v1 and v2 laid out in a temp dir, as the kernel lays them
out) and the probe against the real QEMU binary (machine-less, no guest)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from unikernel import cgroups, vmids
from unikernel.cgroups import CgroupTree, Limits, v1_shares
from unikernel.confine import SECCOMP_BASE, SECCOMP_FULL, Confinement, probe
from unikernel.errors import ConfinementError
from unikernel.settings import VMSettings

LIMITS = Limits(memory_bytes=624 * 1024 * 1024, cpu_weight=100, pids_max=64)
PROC_V1 = "4:memory:/outer/job\n3:pids:/\n2:cpu,cpuacct:/\n0::/\n"


def fake_v1(root: Path) -> None:
    (root / "memory" / "outer" / "job").mkdir(parents=True)
    for controller in ("memory", "cpu", "pids"):
        (root / controller).mkdir(exist_ok=True)
        (root / controller / "cgroup.procs").write_text("")


def fake_v2(root: Path, controllers: str = "cpuset cpu io memory pids") -> None:
    (root / "svc").mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers)
    (root / "svc" / "cgroup.controllers").write_text(controllers)


def test_v1_groups_nest_under_the_hosts_own_per_controller(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    tree = CgroupTree.detect(LIMITS, tmp_path, PROC_V1)
    assert tree.version == "v1"
    group = tree.create("vm-1")
    memory = tmp_path / "memory/outer/job/unifaas" / group.name
    assert (memory / "memory.limit_in_bytes").read_text() == str(624 * 1024 * 1024)
    assert (tmp_path / "cpu/unifaas" / group.name / "cpu.shares").read_text() == "1024"
    assert (tmp_path / "pids/unifaas" / group.name / "pids.max").read_text() == "64"
    assert group.name == f"{os.getpid()}-vm-1"
    assert sorted(group.procs_files()) == sorted(
        str(d / "cgroup.procs")
        for d in (
            memory,
            tmp_path / "cpu/unifaas" / group.name,
            tmp_path / "pids/unifaas" / group.name,
        )
    )
    group.set_memory(100)
    assert group.memory_limit() == 100


def test_v2_one_group_with_controllers_handed_down(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    tree = CgroupTree.detect(Limits(1 << 30, 50, 32), tmp_path, "0::/svc\n")
    assert tree.version == "v2"
    assert (tmp_path / "svc" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    group = tree.create("vm-2")
    d = tmp_path / "svc/unifaas" / group.name
    assert group.directories() == [d]
    assert (d / "memory.max").read_text() == str(1 << 30)
    assert (d / "cpu.weight").read_text() == "50"
    assert (d / "pids.max").read_text() == "32"


def test_v2_without_the_memory_controller_says_so(tmp_path: Path) -> None:
    fake_v2(tmp_path, controllers="cpu pids")
    with pytest.raises(ConfinementError, match="lacks memory"):
        CgroupTree.detect(LIMITS, tmp_path, "0::/svc\n")


def test_no_cgroups_at_all_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfinementError, match="no cgroup v2"):
        CgroupTree.detect(LIMITS, tmp_path, "0::/\n")


def test_stale_groups_of_dead_hosts_are_swept(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    tree = CgroupTree.detect(LIMITS, tmp_path, PROC_V1)
    mine = tree.create("vm")
    dead = tmp_path / "pids/unifaas/999999999-vm"
    dead.mkdir()
    assert tree.sweep_stale() == 1
    assert not dead.exists() and all(d.exists() for d in mine.directories())


def test_v1_shares_scale_the_v2_weight() -> None:
    assert v1_shares(100) == 1024
    assert v1_shares(1) == 10
    assert v1_shares(10000) == 102400


def test_qemu_args_of_each_measure(tmp_path: Path) -> None:
    assert Confinement.none().qemu_args(tmp_path) == []
    c = Confinement(seccomp=SECCOMP_BASE, chroot=True)
    assert c.qemu_args(tmp_path) == ["-sandbox", SECCOMP_BASE, "-chroot", str(tmp_path)]


async def test_probe_on_this_host_confines_fully() -> None:
    """This host (root, the bootstrap's user, QEMU 7.2, writable cgroups) does everything."""
    if os.geteuid() != 0:
        pytest.skip("the full confinement needs root")
    c = await probe(VMSettings())
    assert c.not_applied == ()
    assert c.user is not None and c.user.uid != 0 and c.user.name == "unifaas-vm"
    # Each VM its own ids, from the range the bootstrap gave the VM user.
    assert c.ids is not None and c.ids.ids.owner == "unifaas-vm" and c.ids.ids.count >= 64
    # elevateprivileges=deny kills QEMU 7.2 at -runas: left out with a user.
    assert c.seccomp == SECCOMP_BASE and c.chroot and c.cgroups is not None


async def test_probe_without_a_range_runs_every_vm_as_the_vm_user_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("-runas needs root")
    monkeypatch.setattr(vmids, "SUBUID", tmp_path / "subuid")  # no entry for the VM user
    c = await probe(VMSettings(cgroups=False))
    assert c.user is not None and c.ids is None
    assert any(why.startswith("user per VM:") and "bootstrap" in why for why in c.not_applied)
    assert c.lease() is None
    assert c.qemu_args(tmp_path)[2:4] == ["-runas", c.user.runas]


async def test_probe_drops_what_the_host_cannot_do_and_says_why() -> None:
    c = await probe(VMSettings(vm_user="no-such-user-here", cgroups=False))
    assert c.user is None and c.cgroups is None
    assert any("no-such-user-here" in why for why in c.not_applied)
    # Without -runas the whole seccomp set applies.
    assert c.seccomp == SECCOMP_FULL


async def test_probe_with_a_qemu_that_cannot_run() -> None:
    c = await probe(VMSettings(qemu_binary="/nonexistent/qemu", vm_user="", cgroups=False))
    assert c.seccomp is None
    assert any(why.startswith("seccomp: cannot execute") for why in c.not_applied)


async def test_everything_off_by_setting() -> None:
    c = await probe(VMSettings(seccomp=False, vm_user="", chroot=False, cgroups=False))
    assert c == Confinement.none()


def test_processes_left_in_groups_of_dead_hosts_are_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "STALE_EXIT_WAIT_S", 0.1)
    fake_v1(tmp_path)
    tree = CgroupTree.detect(LIMITS, tmp_path, PROC_V1)
    tree.create("vm")  # makes the parents
    orphan = subprocess.Popen(["sleep", "60"])
    try:
        for parent in set(tree.parents.values()):
            dead = parent / "999999999-vm"
            dead.mkdir()
            (dead / "cgroup.procs").write_text(f"{orphan.pid}\n")
        tree.sweep_stale()  # a fake tree's dirs hold a real file: they stay
        assert orphan.wait(timeout=5) == -signal.SIGKILL
    finally:
        orphan.kill()
        orphan.wait()
