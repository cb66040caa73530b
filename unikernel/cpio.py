"""Deterministic writer for the newc ("070701") cpio format the Linux initramfs unpacker reads."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

__all__ = [
    "CharDev",
    "CpioWriter",
    "Dir",
    "Entry",
    "File",
    "HostFile",
    "Symlink",
    "write_newc",
    "write_newc_to",
]

MAGIC: Final = b"070701"
TRAILER: Final = "TRAILER!!!"
_MAX_FIELD: Final = 0xFFFFFFFF
_COPY_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Dir:
    path: str
    mode: int = 0o755


@dataclass(frozen=True, slots=True)
class File:
    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class HostFile:
    """A regular file whose bytes are streamed from ``source`` on the host.

    Only the content is taken from the host file: owner, times and (unless
    ``mode`` is given) nothing else leak into the archive, so it stays deterministic.
    """

    path: str
    source: Path
    mode: int | None = None


@dataclass(frozen=True, slots=True)
class CharDev:
    path: str
    major: int
    minor: int
    mode: int = 0o600


@dataclass(frozen=True, slots=True)
class Symlink:
    path: str
    target: str


Entry = Dir | File | HostFile | CharDev | Symlink


def _archive_name(path: str) -> str:
    # The kernel resolves names against the initramfs root; a leading "/" or
    # "./" is tolerated there but would make equal trees produce different bytes.
    name = path.strip("/")
    while name.startswith("./"):
        name = name[2:]
    if not name or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"bad archive path {path!r}")
    return name


def _check_perm(mode: int, path: str) -> int:
    if mode & ~0o7777:
        raise ValueError(f"{path!r}: mode {mode:#o} must hold permission bits only")
    return mode


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


class CpioWriter:
    """Streams a newc archive to a binary file object, entry by entry.

    Every header has uid/gid 0, mtime 0 and inode numbers 1, 2, 3... in the order
    entries are added, so the same entries always give the same bytes. A parent
    directory must be added before anything inside it: the kernel's unpacker does
    not create missing parents and silently drops such entries.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._next_ino = 1
        self._names: set[str] = set()
        self._dirs: set[str] = set()
        self._closed = False
        self.bytes_written = 0

    def __enter__(self) -> CpioWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On error the archive is garbage anyway; a trailer would only hide that.
        if exc_type is None:
            self.close()

    def add(self, entry: Entry) -> None:
        if self._closed:
            raise ValueError("archive already closed")
        name = _archive_name(entry.path)
        if name in self._names:
            raise ValueError(f"duplicate archive path {name!r}")
        parent = name.rpartition("/")[0]
        if parent and parent not in self._dirs:
            raise ValueError(f"{name!r}: parent directory {parent!r} was not added before it")

        match entry:
            case Dir(mode=mode):
                self._header(name, stat.S_IFDIR | _check_perm(mode, name), 0, nlink=2)
                self._dirs.add(name)
            case File(data=data, mode=mode):
                self._header(name, stat.S_IFREG | _check_perm(mode, name), len(data))
                self._write(data)
                self._write(_pad(len(data)))
            case HostFile(source=source, mode=mode):
                self._add_host_file(name, source, mode)
            case CharDev(major=major, minor=minor, mode=mode):
                perm = _check_perm(mode, name)
                self._header(name, stat.S_IFCHR | perm, 0, rdev=(major, minor))
            case Symlink(target=target):
                data = target.encode()
                if not data:
                    raise ValueError(f"{name!r}: empty symlink target")
                self._header(name, stat.S_IFLNK | 0o777, len(data))
                self._write(data)
                self._write(_pad(len(data)))
        self._names.add(name)

    def add_all(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def close(self) -> None:
        if self._closed:
            return
        # The trailer is an ordinary header with inode 0 and nlink 1 (as GNU cpio writes it).
        self._header(TRAILER, 0, 0, ino=0)
        self._closed = True

    def _add_host_file(self, name: str, source: Path, mode: int | None) -> None:
        with source.open("rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"{name!r}: {source} is not a regular file")
            perm = stat.S_IMODE(st.st_mode) if mode is None else _check_perm(mode, name)
            size = st.st_size
            self._header(name, stat.S_IFREG | perm, size)
            copied = 0
            while chunk := src.read(min(_COPY_CHUNK, size - copied)):
                self._write(chunk)
                copied += len(chunk)
            if copied != size:
                raise ValueError(f"{source} changed size while it was being archived")
        self._write(_pad(size))

    def _header(
        self,
        name: str,
        mode: int,
        filesize: int,
        *,
        nlink: int = 1,
        rdev: tuple[int, int] = (0, 0),
        ino: int | None = None,
    ) -> None:
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
        encoded = name.encode() + b"\0"
        fields = (
            ino,
            mode,
            0,  # uid
            0,  # gid
            # Regular files must say nlink 1: the kernel treats nlink >= 2 as a
            # hard-link group keyed by inode and would link unrelated files.
            nlink,
            0,  # mtime
            filesize,
            0,  # devmajor
            0,  # devminor
            rdev[0],
            rdev[1],
            len(encoded),
            0,  # check: only used by the "070702" variant
        )
        for value in fields:
            if not 0 <= value <= _MAX_FIELD:
                raise ValueError(f"{name!r}: header field {value} does not fit newc's 32 bits")
        header = MAGIC + b"".join(b"%08X" % value for value in fields) + encoded
        self._write(header)
        self._write(_pad(len(header)))

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.bytes_written += len(data)


def write_newc_to(out: BinaryIO, entries: Iterable[Entry]) -> int:
    """Write a complete archive (with trailer) to ``out``; returns the bytes written."""
    writer = CpioWriter(out)
    writer.add_all(entries)
    writer.close()
    return writer.bytes_written


def write_newc(entries: Iterable[Entry]) -> bytes:
    """A complete archive (with trailer) in memory."""
    buf = io.BytesIO()
    write_newc_to(buf, entries)
    return buf.getvalue()
