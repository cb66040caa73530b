"""A cgroup per VM, on cgroup v2 (one unified tree) or v1 (a tree per controller).

Every VM's QEMU runs in a group of its own with a memory limit, a CPU
weight and a pids limit. Groups nest under the host process's own group,
so limits set on the host (a systemd unit, a container) still bound its
VMs and whoever tracks the host's processes still finds them. The child
joins its group between fork and exec (``VMCgroup.join``), so QEMU never
runs a single instruction outside it.

Group names carry the owner's pid: a host that died without removing its
groups has them swept (when empty) by the next one, as with templates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Literal

from unikernel.children import pid_alive
from unikernel.errors import ConfinementError
from unikernel.vmids import VMUser

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "pids")
V2_CONTROLLERS = ("memory", "cpu", "pids")
GROUP_PARENT = "unifaas"
_OWNED = re.compile(r"^(\d+)-")
# How long processes killed in a stale group get to leave it before it is removed.
STALE_EXIT_WAIT_S = 2.0

log = logging.getLogger(__name__)

Version = Literal["v1", "v2"]


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_weight: int  # 1..10000, 100 = an equal share (v2 scale; v1 shares are scaled)
    pids_max: int


def _own_path(controller: str, proc_cgroup: str) -> str:
    """The host process's group in a controller's tree ('' for the v2 tree)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def v1_shares(weight: int) -> int:
    """cgroup v1 ``cpu.shares`` for a v2 weight (both defaults map: 100 -> 1024)."""
    return max(2, weight * 1024 // 100)


class CgroupTree:
    """Where the VMs' groups live, found once at start."""

    def __init__(self, version: Version, parents: dict[str, Path], limits: Limits) -> None:
        self.version = version
        # Controller -> the directory holding this host's VM groups
        # (on v2 every controller maps to the same directory).
        self.parents = parents
        self.limits = limits  # every new VM's group starts with these

    @classmethod
    def detect(
        cls, limits: Limits, root: Path = CGROUP_ROOT, proc_cgroup: str | None = None
    ) -> CgroupTree:
        """The tree the host can use, or ConfinementError saying why none."""
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        if (root / "cgroup.controllers").is_file():
            return cls._v2(root, proc_cgroup, limits)
        missing = [c for c in V1_CONTROLLERS if not (root / c / "cgroup.procs").is_file()]
        if missing:
            raise ConfinementError(f"no cgroup v2 at {root} and no v1 {', '.join(missing)}")
        parents = {}
        for controller in V1_CONTROLLERS:
            own = root / controller / _own_path(controller, proc_cgroup).lstrip("/")
            parents[controller] = _make_dir(own / GROUP_PARENT)
        return cls("v1", parents, limits)

    @classmethod
    def _v2(cls, root: Path, proc_cgroup: str, limits: Limits) -> CgroupTree:
        own = root / _own_path("", proc_cgroup).lstrip("/")
        available = (own / "cgroup.controllers").read_text().split()
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            raise ConfinementError(f"cgroup v2 group {own} lacks {', '.join(missing)}")
        parent = _make_dir(own / GROUP_PARENT)
        # A v2 group with processes cannot hand controllers down (no internal
        # processes rule) except the root: a host in a busy group must be
        # given a delegated group of its own (systemd: Delegate=yes).
        enable = " ".join(f"+{c}" for c in V2_CONTROLLERS)
        for group in (own, parent):
            try:
                (group / "cgroup.subtree_control").write_text(enable)
            except OSError as err:
                raise ConfinementError(
                    f"cannot enable {enable} in {group} ({err.strerror}); run the node in a "
                    "cgroup of its own with delegation (e.g. systemd-run -p Delegate=yes)"
                ) from err
        return cls("v2", {c: parent for c in V2_CONTROLLERS}, limits)

    def create(self, name: str, owner: VMUser | None = None) -> VMCgroup:
        """A VM's group with its limits; its directories owned by ``owner`` (the VM's own
        ids), the limit files not: a group's limits bind whatever it makes below it."""
        group = VMCgroup(self, f"{os.getpid()}-{name}")
        try:
            for directory in group.directories():
                directory.mkdir(exist_ok=True)
                if owner is not None:
                    os.chown(directory, owner.uid, owner.gid)
            group.set(self.limits)
        except OSError as err:
            group.remove()
            raise ConfinementError(f"cannot create cgroup {group.name}: {err}") from err
        return group

    def sweep_stale(self) -> int:
        """Remove groups left by hosts that are gone; how many.

        A host killed with SIGKILL leaves its QEMUs running: their parent-death
        signal is cleared when ``-runas`` changes their credentials. They are still
        in their groups, so they are killed here before the groups go.
        """
        stale = [
            entry
            for parent in set(self.parents.values())
            for entry in _entries(parent)
            if (match := _OWNED.match(entry.name)) and not pid_alive(int(match.group(1)))
        ]
        # On v1 a group is one directory per controller, each listing the same pids.
        killed = _kill({pid for entry in stale for pid in _members(entry)})
        if killed:
            log.warning("killed %d process(es) left in cgroups of hosts that are gone", killed)
            deadline = time.monotonic() + STALE_EXIT_WAIT_S
            while any(_members(e) for e in stale) and time.monotonic() < deadline:
                time.sleep(0.05)
        removed = 0
        for entry in stale:
            with contextlib.suppress(OSError):
                entry.rmdir()
                removed += 1
        return removed


def _entries(parent: Path) -> list[Path]:
    try:
        return [entry for entry in parent.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _members(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill(pids: set[int]) -> int:
    killed = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


class VMCgroup:
    """One VM's group (a directory per v1 controller, one on v2)."""

    def __init__(self, tree: CgroupTree, name: str) -> None:
        self.tree = tree
        self.name = name

    def directories(self) -> list[Path]:
        return sorted({parent / self.name for parent in self.tree.parents.values()})

    def _file(self, controller: str, v1: str, v2: str) -> Path:
        return self.tree.parents[controller] / self.name / (v1 if self.tree.version == "v1" else v2)

    def set(self, limits: Limits) -> None:
        self.set_memory(limits.memory_bytes)
        self.set_cpu_weight(limits.cpu_weight)
        self._file("pids", "pids.max", "pids.max").write_text(str(limits.pids_max))

    def set_cpu_weight(self, weight: int) -> None:
        if self.tree.version == "v1":
            self._file("cpu", "cpu.shares", "").write_text(str(v1_shares(weight)))
        else:
            self._file("cpu", "", "cpu.weight").write_text(str(weight))

    def set_memory(self, memory_bytes: int) -> None:
        """Also lowers a running VM's limit (the kernel reclaims, or OOM-kills QEMU)."""
        self._file("memory", "memory.limit_in_bytes", "memory.max").write_text(str(memory_bytes))

    def memory_limit(self) -> int:
        text = self._file("memory", "memory.limit_in_bytes", "memory.max").read_text().strip()
        return -1 if text == "max" else int(text)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.directories()]

    def join(self, procs_files: list[str]) -> None:
        """In the forked child before exec: move this process into the group.

        Plain os calls only (no Python-level allocation worth speaking of):
        it runs between fork and exec of a threaded parent.
        """
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Remove the group (once its processes are gone); idempotent."""
        for directory in self.directories():
            with contextlib.suppress(OSError):
                directory.rmdir()


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        raise ConfinementError(f"cannot create cgroup {path}: {err.strerror}") from err
    return path
