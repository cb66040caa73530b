"""Ids of its own for every VM: the subordinate range read from subuid/subgid files, and
leases that two pools (two nodes of one host) never share."""

from __future__ import annotations

from pathlib import Path

import pytest

from unikernel.errors import ConfinementError
from unikernel.vmids import IdPool, IdRange, VMUser, subordinate_range

USER = VMUser("unifaas-vm", 999, 995)


def files(tmp_path: Path, subuid: str, subgid: str) -> tuple[Path, Path]:
    (tmp_path / "subuid").write_text(subuid)
    (tmp_path / "subgid").write_text(subgid)
    return tmp_path / "subuid", tmp_path / "subgid"


def test_the_range_is_read_by_name_or_uid(tmp_path: Path) -> None:
    uid, gid = files(tmp_path, "alice:100000:65536\nunifaas-vm:165536:4096\n", "999:200000:64\n")
    ids = subordinate_range(USER, uid, gid)
    assert (ids.first_uid, ids.first_gid, ids.count) == (165536, 200000, 64)  # the smaller
    assert str(ids) == "ids 165536-165599 (subordinate ids of unifaas-vm)"


@pytest.mark.parametrize(
    ("subuid", "subgid", "why"),
    [
        ("alice:100000:65536\n", "unifaas-vm:1:2\n", "no subordinate id range"),
        ("unifaas-vm:0:10\n", "unifaas-vm:1:10\n", "holds root"),
        ("unifaas-vm:100:0\n", "unifaas-vm:100:5\n", "empty"),
    ],
)
def test_a_missing_or_bad_range_says_what_is_wrong(
    tmp_path: Path, subuid: str, subgid: str, why: str
) -> None:
    with pytest.raises(ConfinementError, match=why):
        subordinate_range(USER, *files(tmp_path, subuid, subgid))


def test_two_pools_of_one_host_never_lease_the_same_ids(tmp_path: Path) -> None:
    ids = IdRange("unifaas-vm", 100000, 200000, 4)
    a, b = IdPool(ids, tmp_path, set), IdPool(ids, tmp_path, set)
    leases = [a.lease(), b.lease(), a.lease(), b.lease()]
    assert sorted(lease.user.uid for lease in leases) == [100000, 100001, 100002, 100003]
    assert all(lease.user.gid - lease.user.uid == 100000 for lease in leases)
    with pytest.raises(ConfinementError, match="every id"):
        a.lease()
    leases[1].release()
    leases[1].release()  # idempotent
    again = a.lease()
    assert again.user.uid == leases[1].user.uid
    assert again.user.runas == f"{again.user.uid}:{again.user.gid}"


def test_ids_a_process_still_runs_under_are_passed_over(tmp_path: Path) -> None:
    ids = IdRange("unifaas-vm", 100000, 100000, 3)
    pool = IdPool(ids, tmp_path, lambda: {100000, 100001})  # a QEMU a killed node left
    assert pool.lease().user.uid == 100002
    with pytest.raises(ConfinementError):
        pool.lease()


def test_ids_given_back_are_taken_last(tmp_path: Path) -> None:
    pool = IdPool(IdRange("unifaas-vm", 100000, 100000, 3), tmp_path, set)
    first = pool.lease()
    first.release()
    assert [pool.lease().user.uid for _ in range(3)] == [100001, 100002, 100000]
