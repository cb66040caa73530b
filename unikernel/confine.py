"""The host side of the VM wall: what confines each QEMU, probed once per host.

Each measure is on by default and dropped only when this host cannot do it
(the node then says why, once, and ``/v1/status`` shows it):

- **seccomp** (``-sandbox on,...``): QEMU's own syscall filter. With
  ``-runas`` the ``elevateprivileges=deny`` part is left out: QEMU 7.2
  installs the filter before it drops root, so that part kills it (SIGSYS,
  measured). Nothing is lost by leaving it out once root is dropped: a
  non-root process cannot raise its ids again, ``spawn=deny`` forbids the
  exec of a setuid binary, and seccomp sets ``no_new_privs`` anyway.
- **user**: QEMU drops to unprivileged ids (``-runas``) once its files are open,
  and needs no file: what it needs (kernel, initrd, RAM file, sockets, console
  log) is opened as root before the drop; snapshot state goes in and out as
  passed descriptors. Each VM has ids of its own, leased from the subordinate
  range of the VM user the bootstrap creates (``unifaas-vm``; see
  ``unikernel.vmids``), and its run directory and cgroup are owned by them:
  one QEMU cannot signal another, read its ``/proc`` or its files. Without
  that range, every VM runs as the VM user itself.
- **chroot**: QEMU then changes root to its (empty of anything it may use)
  run directory: nothing of the host's file tree is visible to it.
- **cgroup**: a group per VM with a memory limit (its worst case: guest RAM,
  translation cache, QEMU itself), a CPU weight and a pids limit
  (``unikernel.cgroups``).
- no network device and no inherited descriptors (``close_fds``, stdin
  from /dev/null) are not settings: they are always so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pwd
import tempfile
from pathlib import Path

from unikernel.cgroups import CgroupTree, Limits
from unikernel.children import read_tail
from unikernel.errors import ConfinementError
from unikernel.settings import VMSettings
from unikernel.vmids import IdLease, IdPool, VMUser, subordinate_range

log = logging.getLogger(__name__)

SECCOMP_BASE = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"
SECCOMP_FULL = SECCOMP_BASE + ",elevateprivileges=deny"
PROBE_TIMEOUT_S = 10.0

# What one VM may cost the host at most beyond its guest RAM and translation
# cache: QEMU itself (measured ~15 MiB) with room to spare.
VM_OVERHEAD_MIB = 48


def vm_memory_ceiling_mib(settings: VMSettings) -> int:
    """The most host memory one VM can hold: its cgroup limit, and the capacity rule's unit."""
    return settings.guest_memory_mib + settings.tcg_tb_size_mib + VM_OVERHEAD_MIB


@dataclasses.dataclass(frozen=True)
class Confinement:
    """What confines every VM of this host (``none()``: nothing, for tests and tools)."""

    seccomp: str | None = None  # QEMU's -sandbox argument
    user: VMUser | None = None
    ids: IdPool | None = None  # ids of its own for each VM (else every VM runs as ``user``)
    chroot: bool = False
    cgroups: CgroupTree | None = None  # with a new VM's limits
    # What the settings asked for and the host could not do, each with its reason.
    not_applied: tuple[str, ...] = ()

    @classmethod
    def none(cls) -> Confinement:
        return cls()

    def lease(self) -> IdLease | None:
        """Ids of its own for a new VM, when the host has a range for them."""
        return self.ids.lease() if self.ids is not None else None

    def qemu_args(self, run_dir: Path, user: VMUser | None = None) -> list[str]:
        """``user``: the VM's own ids (a lease), else the host's one VM user."""
        args: list[str] = []
        user = user or self.user
        if self.seccomp:
            args += ["-sandbox", self.seccomp]
        if user is not None:
            args += ["-runas", user.runas]
        if self.chroot:
            args += ["-chroot", str(run_dir)]
        return args


def _vm_user(name: str) -> VMUser:
    if os.geteuid() != 0:
        raise ConfinementError("the host does not run as root, so QEMU cannot drop to a user")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfinementError(
            f"user {name!r} does not exist (scripts/bootstrap.sh creates it)"
        ) from None
    if entry.pw_uid == 0:
        raise ConfinementError(f"user {name!r} is root")
    return VMUser(name, entry.pw_uid, entry.pw_gid)


async def _qemu_accepts(qemu_binary: str, args: list[str]) -> str | None:
    """None when a machine-less QEMU starts and quits with ``args``, else why not."""
    script = b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'
    with tempfile.TemporaryDirectory(prefix="unifaas-probe-") as tmp:
        err_path = Path(tmp) / "stderr"
        argv = [qemu_binary, "-M", "none", "-nodefaults", "-no-user-config", "-display", "none"]
        argv += [a.replace("{dir}", tmp) for a in args] + ["-qmp", "stdio"]
        with err_path.open("wb") as err:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=err,
                )
            except OSError as exc:
                return f"cannot execute {qemu_binary}: {exc}"
            try:
                await asyncio.wait_for(proc.communicate(script), PROBE_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return "QEMU did not quit"
        if proc.returncode == 0:
            return None
        tail = read_tail(err_path).strip()
        return f"QEMU exited with {proc.returncode}" + (f": {tail}" if tail else "")


async def _refused(qemu_binary: str, measures: dict[str, list[str]]) -> dict[str, str]:
    """The measures QEMU refuses, each with why. One start of QEMU when it takes them all;
    else each alone, then the rest together again: measures that pass one by one can
    fail combined (as elevateprivileges=deny with -runas does)."""
    combined = [arg for args in measures.values() for arg in args]
    if not combined or await _qemu_accepts(qemu_binary, combined) is None:
        return {}
    refused = {}
    for name, args in measures.items():
        if args and (why := await _qemu_accepts(qemu_binary, args)) is not None:
            refused[name] = why
    rest = [arg for name, args in measures.items() if name not in refused for arg in args]
    if rest and (why := await _qemu_accepts(qemu_binary, rest)) is not None:
        raise ConfinementError(f"QEMU refuses its confinement {' '.join(rest)}: {why}")
    return refused


async def probe(settings: VMSettings) -> Confinement:
    """Find out which of the measures the settings ask for this host can apply."""
    skipped: list[str] = []
    user: VMUser | None = None
    if settings.vm_user:
        try:
            user = _vm_user(settings.vm_user)
        except ConfinementError as err:
            skipped.append(f"user: {err.message}")
    chroot = settings.chroot
    if chroot and os.geteuid() != 0:
        skipped.append("chroot: the host does not run as root")
        chroot = False
    ids: IdPool | None = None
    if user is not None and settings.user_per_vm:
        try:
            ids = IdPool(subordinate_range(user))
        except ConfinementError as err:
            skipped.append(f"user per VM: {err.message}")
    seccomp: str | None = None
    if settings.seccomp:
        seccomp = SECCOMP_BASE if user is not None else SECCOMP_FULL
    runas = ids.probe_user() if ids is not None else user
    measures = {
        "seccomp": ["-sandbox", seccomp] if seccomp else [],
        "user": ["-runas", runas.runas] if runas is not None else [],
        "chroot": ["-chroot", "{dir}"] if chroot else [],
    }
    refused = await _refused(settings.qemu_binary, measures)
    skipped += [f"{name}: {why}" for name, why in refused.items()]
    seccomp = None if "seccomp" in refused else seccomp
    user = None if "user" in refused else user
    ids = None if user is None else ids
    chroot = chroot and "chroot" not in refused
    cgroups: CgroupTree | None = None
    if settings.cgroups:
        limits = Limits(
            vm_memory_ceiling_mib(settings) * 1024 * 1024,
            settings.vm_cpu_weight,
            settings.vm_pids_max,
        )
        try:
            cgroups = CgroupTree.detect(limits)
            cgroups.sweep_stale()
        except (ConfinementError, OSError) as err:
            skipped.append(f"cgroup: {err}")
            cgroups = None
    confinement = Confinement(seccomp, user, ids, chroot, cgroups, tuple(skipped))
    for line in skipped:
        log.warning("VM confinement: %s; VMs run without it", line)
    return confinement


def prepare_run_dir(run_dir: Path, confinement: Confinement, user: VMUser | None = None) -> None:
    """A confined QEMU opens all it needs before it drops root. With ids of its own
    (``user``), its run dir is its own and no other VM's (0700); with the host's one VM
    user, it may read nothing of it, nor write to it."""
    if user is not None:
        os.chown(run_dir, user.uid, user.gid)
        os.chmod(run_dir, 0o700)
    elif confinement.user is not None:
        os.chmod(run_dir, 0o711)
