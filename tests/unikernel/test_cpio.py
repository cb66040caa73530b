"""The newc writer: format details the kernel relies on, determinism, and GNU cpio agreeing."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unikernel.cpio import (
    CharDev,
    CpioWriter,
    Dir,
    Entry,
    File,
    HostFile,
    Symlink,
    write_newc,
    write_newc_to,
)


@dataclass
class Member:
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes


def parse_newc(blob: bytes) -> list[Member]:
    """An independent reader, strict about magic, alignment and the trailer."""
    members: list[Member] = []
    pos = 0
    while True:
        assert pos % 4 == 0
        assert blob[pos : pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_start = pos + 110
        raw_name = blob[name_start : name_start + namesize]
        assert raw_name.endswith(b"\0") and b"\0" not in raw_name[:-1]
        name = raw_name[:-1].decode()
        data_start = name_start + namesize + (-(110 + namesize) % 4)
        assert blob[name_start + namesize : data_start].strip(b"\0") == b""
        data = blob[data_start : data_start + size]
        pos = data_start + size + (-size % 4)
        if name == "TRAILER!!!":
            assert pos == len(blob)
            return members
        members.append(Member(name, ino, mode, uid, gid, nlink, mtime, (rmaj, rmin), data))


SAMPLE: list[Entry] = [
    Dir("/dev"),
    CharDev("/dev/console", 5, 1, 0o600),
    File("/init", b"#!/bin/python3\nprint('hi')\n", 0o755),
    Dir("usr", 0o700),
    Dir("usr/lib"),
    File("usr/lib/empty", b""),
    File("usr/lib/odd", b"x" * 5),
    Symlink("/lib", "usr/lib"),
]


def test_headers_match_what_the_kernel_expects() -> None:
    members = parse_newc(write_newc(SAMPLE))
    assert [m.name for m in members] == [
        "dev",
        "dev/console",
        "init",
        "usr",
        "usr/lib",
        "usr/lib/empty",
        "usr/lib/odd",
        "lib",
    ]
    assert [m.ino for m in members] == list(range(1, len(members) + 1))
    assert all(m.uid == m.gid == m.mtime == 0 for m in members)
    by_name = {m.name: m for m in members}
    assert by_name["dev"].mode == stat.S_IFDIR | 0o755
    assert by_name["dev/console"].mode == stat.S_IFCHR | 0o600
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["init"].mode == stat.S_IFREG | 0o755
    assert by_name["init"].data == b"#!/bin/python3\nprint('hi')\n"
    assert by_name["usr"].mode == stat.S_IFDIR | 0o700
    assert by_name["usr/lib/odd"].data == b"xxxxx"
    assert by_name["lib"].mode == stat.S_IFLNK | 0o777
    assert by_name["lib"].data == b"usr/lib"
    # nlink >= 2 on a regular file would make the kernel hard-link files by inode.
    assert all(m.nlink == 1 for m in members if stat.S_ISREG(m.mode))


def test_same_entries_same_bytes() -> None:
    assert write_newc(SAMPLE) == write_newc(list(SAMPLE))


def test_empty_archive_is_just_the_trailer() -> None:
    assert parse_newc(write_newc([])) == []


def test_streaming_host_file_equals_in_memory_file(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 3)
    src = tmp_path / "big.bin"
    src.write_bytes(payload)
    src.chmod(0o751)
    os.utime(src, (12345, 12345))

    out = io.BytesIO()
    written = write_newc_to(out, [Dir("lib"), HostFile("lib/big.bin", src)])
    assert written == len(out.getvalue())
    assert out.getvalue() == write_newc([Dir("lib"), File("lib/big.bin", payload, 0o751)])
    overridden = parse_newc(write_newc([HostFile("big", src, mode=0o600)]))
    assert overridden[0].mode == stat.S_IFREG | 0o600


def test_context_manager_writes_trailer_only_on_success() -> None:
    out = io.BytesIO()
    with CpioWriter(out) as w:
        w.add(File("a", b"1"))
    assert [m.name for m in parse_newc(out.getvalue())] == ["a"]

    broken = io.BytesIO()
    with pytest.raises(ValueError), CpioWriter(broken) as w:
        w.add(File("a", b"1"))
        w.add(File("a", b"2"))
    assert b"TRAILER!!!" not in broken.getvalue()


@pytest.mark.parametrize(
    "entries",
    [
        [File("a", b""), File("/a", b"")],  # same path twice
        [File("missing/child", b"")],  # parent not added first
        [File("a/b", b"")],
        [File("../escape", b"")],
        [File("", b"")],
        [File("a//b", b"")],
        [File("a", b"", mode=0o100644)],  # type bits belong to the writer
        [Symlink("l", "")],
        [CharDev("c", -1, 0)],
    ],
)
def test_rejects_archives_the_kernel_would_mangle(entries: list[Entry]) -> None:
    with pytest.raises(ValueError):
        write_newc(entries)


def test_cannot_add_after_close() -> None:
    w = CpioWriter(io.BytesIO())
    w.close()
    with pytest.raises(ValueError):
        w.add(Dir("x"))


_names = st.text(alphabet="abcxyz0_-.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)


@given(
    files=st.dictionaries(_names, st.binary(max_size=70), max_size=8),
    modes=st.sampled_from([0o644, 0o755, 0o600, 0o4755]),
)
def test_round_trip(files: dict[str, bytes], modes: int) -> None:
    entries: list[Entry] = [Dir("d")]
    entries += [File(f"d/{name}", data, modes) for name, data in files.items()]
    blob = write_newc(entries)
    assert len(blob) % 4 == 0
    members = parse_newc(blob)
    assert {m.name: m.data for m in members[1:]} == {f"d/{n}": d for n, d in files.items()}
    assert all(m.mode == stat.S_IFREG | modes for m in members[1:])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_lists_and_extracts_it(tmp_path: Path) -> None:
    entries = [e for e in SAMPLE if not isinstance(e, CharDev)]  # mknod needs privileges
    archive = tmp_path / "a.cpio"
    archive.write_bytes(write_newc(entries))

    listing = subprocess.run(
        ["cpio", "-t", "--quiet", "-F", str(archive)], capture_output=True, text=True, check=True
    )
    assert listing.stdout.split() == ["dev", "init", "usr", "usr/lib", "usr/lib/empty",
                                      "usr/lib/odd", "lib"]  # fmt: skip

    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(
        ["cpio", "-i", "--quiet", "--no-absolute-filenames", "-F", str(archive)],
        cwd=root,
        check=True,
        capture_output=True,
    )
    assert (root / "init").read_bytes() == b"#!/bin/python3\nprint('hi')\n"
    assert stat.S_IMODE((root / "init").stat().st_mode) == 0o755
    assert (root / "usr/lib/odd").read_bytes() == b"xxxxx"
    assert (root / "usr/lib/empty").read_bytes() == b""
    assert os.readlink(root / "lib") == "usr/lib"
    assert (root / "lib/odd").read_bytes() == b"xxxxx"
