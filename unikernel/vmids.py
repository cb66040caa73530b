"""A uid and gid of its own for every QEMU, leased from the VM user's subordinate range.

As Firecracker's jailer does, each VM runs under ids no other VM has: one QEMU that got
out of its guest cannot signal another QEMU, read its ``/proc`` or its run directory.
The range is the VM user's entry in ``/etc/subuid`` and ``/etc/subgid`` (where Linux
keeps the id ranges it hands to users; ``scripts/bootstrap.sh`` adds 4096). Ids in it
have no passwd entry, own no file of the host and are no one's; QEMU drops to one with
``-runas UID:GID``.

No two VMs of one host get the same ids, across its nodes too: a lease is an exclusive
``flock`` on a file named by the id under ``LEASE_DIR``, held by the node while its VM
lives (the kernel lets go of it when the node dies), and an id that some process still
runs under (a QEMU a killed node left behind) is passed over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from unikernel.errors import ConfinementError

LEASE_DIR = Path("/run/unifaas/vm-ids")
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


@dataclasses.dataclass(frozen=True)
class VMUser:
    name: str
    uid: int
    gid: int

    @property
    def runas(self) -> str:
        return f"{self.uid}:{self.gid}"


@dataclasses.dataclass(frozen=True)
class IdRange:
    """``count`` uids from ``first_uid`` and as many gids from ``first_gid``."""

    owner: str
    first_uid: int
    first_gid: int
    count: int

    def __str__(self) -> str:
        last = self.first_uid + self.count - 1
        return f"ids {self.first_uid}-{last} (subordinate ids of {self.owner})"


def _first_range(path: Path, user: VMUser) -> tuple[int, int] | None:
    """The first ``start:count`` entry of ``path`` for the user (by name or uid)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        owner, _, rest = line.strip().partition(":")
        start, _, count = rest.partition(":")
        if owner in (user.name, str(user.uid)) and start.isdigit() and count.isdigit():
            return int(start), int(count)
    return None


def subordinate_range(
    user: VMUser, subuid: Path | None = None, subgid: Path | None = None
) -> IdRange:
    """The user's first range in both files (default the host's)."""
    subuid, subgid = subuid or SUBUID, subgid or SUBGID
    uids, gids = _first_range(subuid, user), _first_range(subgid, user)
    if uids is None or gids is None:
        raise ConfinementError(
            f"{user.name} has no subordinate id range in {subuid} and {subgid} "
            "(scripts/bootstrap.sh adds one); every VM runs as that one user"
        )
    count = min(uids[1], gids[1])
    if min(uids[0], gids[0]) == 0 or count == 0:
        raise ConfinementError(f"{user.name}'s subordinate id range is empty or holds root")
    return IdRange(user.name, uids[0], gids[0], count)


def running_uids() -> set[int]:
    """The uids every process of the host runs under (its ``/proc`` entries' owners)."""
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids.add(entry.stat(follow_symlinks=False).st_uid)
    return uids


@dataclasses.dataclass
class IdLease:
    user: VMUser
    _fd: int

    def release(self) -> None:
        """Idempotent: the ids may go to another VM once its QEMU is gone."""
        if self._fd >= 0:
            os.close(self._fd)  # closing lets go of the flock
            self._fd = -1


class IdPool:
    """Hands out the ids of ``ids``, one VM at a time."""

    def __init__(
        self,
        ids: IdRange,
        lease_dir: Path = LEASE_DIR,
        in_use: Callable[[], set[int]] = running_uids,
    ) -> None:
        self.ids, self._dir, self._in_use = ids, lease_dir, in_use
        self._next = 0  # round the range: an id just given back is taken last

    def probe_user(self) -> VMUser:
        """The range's first ids, for QEMU's start-up probe (no lease: it runs for a moment)."""
        return VMUser(self.ids.owner, self.ids.first_uid, self.ids.first_gid)

    def lease(self) -> IdLease:
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise ConfinementError(f"cannot create {self._dir}: {err.strerror}") from err
        busy = self._in_use()
        ids = self.ids
        for step in range(ids.count):
            offset = (self._next + step) % ids.count
            uid, gid = ids.first_uid + offset, ids.first_gid + offset
            if uid in busy:
                continue
            fd = os.open(self._dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._next = offset + 1
            return IdLease(VMUser(f"{ids.owner}+{offset}", uid, gid), fd)
        raise ConfinementError(f"every id of {ids} is taken by a VM of this host")
