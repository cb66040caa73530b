"""``wasi:filesystem``: the function's files bundle, preopened at ``/``.

The raw ABI's semantics: each call gets a fresh writable copy of the bundle, so its writes
never reach the next call; a function without a bundle gets no preopens. Paths resolve
inside the copy by their text: an absolute path, or one that climbs out of the copy, is
``not-permitted``. The copy holds no links (a bundle with one is refused at deploy) and a
component cannot make one (``link-at`` and ``symlink-at`` are ``not-permitted``); every
open also says ``O_NOFOLLOW``.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Any

from wasmtime.component import Record, ResourceAny, ResourceHost

from wasm_runtime.component.call import Call
from wasm_runtime.component.clocks import datetime_ns, datetime_record
from wasm_runtime.component.handles import Kind
from wasm_runtime.component.io import CHUNK_BYTES, InputStream, IoError, OutputStream
from wasm_runtime.component.linking import Interface
from wasm_runtime.component.values import Case, Err, Ok, case_of, record

READ, WRITE, MUTATE = "read", "write", "mutate-directory"
PREOPEN_FLAGS = frozenset({READ, MUTATE})
DIRECTORY, REGULAR_FILE = "directory", "regular-file"

# errno -> wasi:filesystem error-code; anything else is "io".
_CODES = {
    errno.EACCES: "access",
    errno.EAGAIN: "would-block",
    errno.EBADF: "bad-descriptor",
    errno.EBUSY: "busy",
    errno.EDQUOT: "quota",
    errno.EEXIST: "exist",
    errno.EFBIG: "file-too-large",
    errno.EINTR: "interrupted",
    errno.EINVAL: "invalid",
    errno.EISDIR: "is-directory",
    errno.ELOOP: "loop",
    errno.EMLINK: "too-many-links",
    errno.ENAMETOOLONG: "name-too-long",
    errno.ENOENT: "no-entry",
    errno.ENOMEM: "insufficient-memory",
    errno.ENOSPC: "insufficient-space",
    errno.ENOTDIR: "not-directory",
    errno.ENOTEMPTY: "not-empty",
    errno.EOPNOTSUPP: "unsupported",
    errno.EPERM: "not-permitted",
    errno.EROFS: "read-only",
    errno.ESPIPE: "invalid-seek",
    errno.EXDEV: "cross-device",
}


class FsError(Exception):
    """A wasi:filesystem error-code, raised inside a host function, returned as ``err``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def error_code(err: OSError) -> str:
    return _CODES.get(err.errno or 0, "io")


class Descriptor:
    """An open directory (``fd`` None: it is a path) or file of the call's copy."""

    def __init__(self, path: Path, flags: frozenset[str], fd: int | None = None) -> None:
        self.path = path
        self.flags = flags
        self.fd = fd

    @property
    def type(self) -> str:
        return DIRECTORY if self.fd is None else REGULAR_FILE

    def file(self, needs: str) -> int:
        """Its fd, if it is a file opened for ``needs``."""
        if self.fd is None:
            raise FsError("is-directory")
        if needs not in self.flags:
            raise FsError("bad-descriptor")
        return self.fd

    def mutable(self) -> None:
        if self.fd is not None:
            raise FsError("not-directory")
        if MUTATE not in self.flags:
            raise FsError("read-only")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = -1  # a closed file stays a file (and fails with bad-descriptor)


class FileInput(InputStream):
    """A file's bytes from an offset, read as the component asks (its own fd)."""

    def __init__(self, fd: int, offset: int) -> None:
        super().__init__()
        self.fd = os.dup(fd)
        self.offset = offset

    def read(self, n: int) -> Ok | Err:
        try:
            chunk = os.pread(self.fd, min(n, CHUNK_BYTES), self.offset)
        except OSError:
            return Err(None)  # reported as the end of the stream: nothing more to read
        if not chunk and n > 0:
            return Err(None)
        self.offset += len(chunk)
        return Ok(chunk)

    def skip(self, n: int) -> Ok | Err:
        read = self.read(n)
        return Ok(len(read.value)) if isinstance(read, Ok) else read

    def close(self) -> None:
        os.close(self.fd)


class FileOutput(OutputStream):
    """Writes to a file from an offset, or at its end (its own fd)."""

    def __init__(self, fd: int, offset: int | None) -> None:
        self.fd = os.dup(fd)
        self.offset = offset  # None: append

    def write(self, call: Call, data: bytes) -> Ok | Err:
        if len(data) > CHUNK_BYTES:
            call.misuse(f"a write of {len(data)} bytes is more than check-write allowed")
        try:
            at = os.fstat(self.fd).st_size if self.offset is None else self.offset
            while data:
                done = os.pwrite(self.fd, data, at)
                at, data = at + done, data[done:]
        except OSError as err:
            failed = IoError(os.strerror(err.errno or 0), error_code(err))
            return Err(Case("last-operation-failed", call.table.own(Kind.ERROR, failed)))
        if self.offset is not None:
            self.offset = at
        return Ok()

    def close(self) -> None:
        os.close(self.fd)


class DirectoryEntries:
    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.entries = entries
        self.at = 0

    def next(self) -> Record | None:
        if self.at >= len(self.entries):
            return None
        kind, name = self.entries[self.at]
        self.at += 1
        return record(type=kind, name=name)


def _type_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISREG(mode):
        return REGULAR_FILE
    return "unknown"  # nothing else can be made in a copy


def _stat_record(st: os.stat_result) -> Record:
    return record(
        type=_type_of(st.st_mode),
        link_count=st.st_nlink,
        size=st.st_size,
        data_access_timestamp=datetime_record(st.st_atime_ns),
        data_modification_timestamp=datetime_record(st.st_mtime_ns),
        status_change_timestamp=datetime_record(st.st_ctime_ns),
    )


def _hash(st: os.stat_result) -> Record:
    return record(lower=st.st_ino & (2**64 - 1), upper=st.st_dev & (2**64 - 1))


def _resolve(call: Call, base: Descriptor, path: str) -> Path:
    """``path`` from the directory ``base``, inside the call's copy (by its text)."""
    root = call.files_root
    if root is None or base.fd is not None:
        raise FsError("not-directory")
    if path.startswith("/") or "\0" in path:
        raise FsError("not-permitted" if path.startswith("/") else "invalid")
    parts = list(base.path.relative_to(root).parts)
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise FsError("not-permitted")
            parts.pop()
        else:
            parts.append(part)
    return root.joinpath(*parts)


def _fs(impl: Any) -> Any:
    """``impl``'s result as ``ok``; an OSError or FsError as its ``err``."""

    def run(call: Call, store: Any, this: ResourceAny, *args: Any) -> Ok | Err:
        try:
            return Ok(impl(call, store, call.table.get(store, this, Descriptor), *args))
        except FsError as err:
            return Err(err.code)
        except OSError as err:
            return Err(error_code(err))

    return run


def _own(call: Call, kind: Kind, obj: Any) -> ResourceHost:
    return call.table.own(kind, obj)


def _directories(call: Call, store: Any) -> list[Any]:
    if call.files_root is None:
        return []
    preopen = Descriptor(call.files_root, PREOPEN_FLAGS)
    return [(_own(call, Kind.DESCRIPTOR, preopen), "/")]


def _read_via_stream(call: Call, store: Any, d: Descriptor, offset: int) -> ResourceHost:
    return _own(call, Kind.INPUT_STREAM, FileInput(d.file(READ), offset))


def _write_via_stream(call: Call, store: Any, d: Descriptor, offset: int) -> ResourceHost:
    return _own(call, Kind.OUTPUT_STREAM, FileOutput(d.file(WRITE), offset))


def _append_via_stream(call: Call, store: Any, d: Descriptor) -> ResourceHost:
    return _own(call, Kind.OUTPUT_STREAM, FileOutput(d.file(WRITE), None))


def _nothing(call: Call, store: Any, d: Descriptor, *args: Any) -> None:
    return None


def _get_flags(call: Call, store: Any, d: Descriptor) -> set[str]:
    return set(d.flags)


def _get_type(call: Call, store: Any, d: Descriptor) -> str:
    return d.type


def _set_size(call: Call, store: Any, d: Descriptor, size: int) -> None:
    os.ftruncate(d.file(WRITE), size)


def _utime(target: Path | int, access: Any, modification: Any) -> None:
    st = os.stat(target)
    now = time.time_ns()

    def pick(value: Any, current: int) -> int:
        case, payload = case_of(value)  # new-timestamp's cases are always tagged
        if case == "no-change":
            return current
        return now if case == "now" else datetime_ns(payload)

    os.utime(target, ns=(pick(access, st.st_atime_ns), pick(modification, st.st_mtime_ns)))


def _set_times(call: Call, store: Any, d: Descriptor, access: Any, modification: Any) -> None:
    _utime(d.path if d.fd is None else d.file(WRITE), access, modification)


def _read(call: Call, store: Any, d: Descriptor, length: int, offset: int) -> tuple[bytes, bool]:
    fd = d.file(READ)
    data = os.pread(fd, min(length, CHUNK_BYTES), offset)
    return data, offset + len(data) >= os.fstat(fd).st_size


def _write(call: Call, store: Any, d: Descriptor, data: bytes, offset: int) -> int:
    return os.pwrite(d.file(WRITE), data, offset)


def _read_directory(call: Call, store: Any, d: Descriptor) -> ResourceHost:
    if d.fd is not None:
        raise FsError("not-directory")
    with os.scandir(d.path) as found:
        entries = sorted((_type_of(e.stat(follow_symlinks=False).st_mode), e.name) for e in found)
    return _own(call, Kind.DIRECTORY_ENTRY_STREAM, DirectoryEntries([(t, n) for t, n in entries]))


def _next_entry(call: Call, store: Any, this: ResourceAny) -> Ok:
    return Ok(call.table.get(store, this, DirectoryEntries).next())


def _create_directory_at(call: Call, store: Any, d: Descriptor, path: str) -> None:
    d.mutable()
    os.mkdir(_resolve(call, d, path))


def _stat(call: Call, store: Any, d: Descriptor) -> Record:
    return _stat_record(os.stat(d.path) if d.fd is None else os.fstat(d.fd))


def _stat_at(call: Call, store: Any, d: Descriptor, path_flags: set[str], path: str) -> Record:
    return _stat_record(os.stat(_resolve(call, d, path), follow_symlinks=False))


def _set_times_at(
    call: Call, store: Any, d: Descriptor, path_flags: set[str], path: str, a: Any, m: Any
) -> None:
    d.mutable()
    _utime(_resolve(call, d, path), a, m)


def _open_at(
    call: Call,
    store: Any,
    d: Descriptor,
    path_flags: set[str],
    path: str,
    open_flags: set[str],
    flags: set[str],
) -> ResourceHost:
    target = _resolve(call, d, path)
    wants = frozenset(flags) & frozenset({READ, WRITE, MUTATE})
    if wants & {WRITE, MUTATE} or open_flags & {"create", "truncate"}:
        d.mutable()  # a child may have no more than its parent allows
    if "directory" in open_flags or (target.is_dir() and not target.is_symlink()):
        if open_flags & {"create", "exclusive", "truncate"} and "directory" in open_flags:
            raise FsError("invalid")
        if WRITE in wants:
            raise FsError("is-directory")
        if not stat.S_ISDIR(os.stat(target, follow_symlinks=False).st_mode):
            raise FsError("not-directory")
        return _own(call, Kind.DESCRIPTOR, Descriptor(target, wants))
    if READ in wants and WRITE in wants:
        access = os.O_RDWR
    else:
        access = os.O_WRONLY if WRITE in wants else os.O_RDONLY
    mode = access | os.O_NOFOLLOW | os.O_CLOEXEC
    mode |= os.O_CREAT if "create" in open_flags else 0
    mode |= os.O_EXCL if "exclusive" in open_flags else 0
    mode |= os.O_TRUNC if "truncate" in open_flags else 0
    fd = os.open(target, mode, 0o644)
    return _own(call, Kind.DESCRIPTOR, Descriptor(target, wants, fd))


def _not_permitted(*args: Any) -> None:
    raise FsError("not-permitted")


def _readlink_at(call: Call, store: Any, d: Descriptor, path: str) -> str:
    os.stat(_resolve(call, d, path), follow_symlinks=False)  # no-entry when it is not there
    raise FsError("invalid")  # it is there, and it is not a link: none can exist


def _remove_directory_at(call: Call, store: Any, d: Descriptor, path: str) -> None:
    d.mutable()
    target = _resolve(call, d, path)
    if target == call.files_root:
        raise FsError("busy")
    os.rmdir(target)


def _rename_at(
    call: Call, store: Any, d: Descriptor, old: str, new_dir: ResourceAny, new: str
) -> None:
    into = call.table.get(store, new_dir, Descriptor)
    d.mutable()
    into.mutable()
    os.rename(_resolve(call, d, old), _resolve(call, into, new))


def _unlink_file_at(call: Call, store: Any, d: Descriptor, path: str) -> None:
    d.mutable()
    target = _resolve(call, d, path)
    if stat.S_ISDIR(os.stat(target, follow_symlinks=False).st_mode):
        raise FsError("is-directory")
    os.unlink(target)


def _is_same_object(call: Call, store: Any, this: ResourceAny, other: ResourceAny) -> bool:
    a = call.table.get(store, this, Descriptor)
    b = call.table.get(store, other, Descriptor)
    try:
        return os.path.samefile(a.path, b.path)
    except OSError:
        return False


def _metadata_hash(call: Call, store: Any, d: Descriptor) -> Record:
    return _hash(os.stat(d.path) if d.fd is None else os.fstat(d.fd))


def _metadata_hash_at(
    call: Call, store: Any, d: Descriptor, path_flags: set[str], path: str
) -> Record:
    return _hash(os.stat(_resolve(call, d, path), follow_symlinks=False))


def _error_code(call: Call, store: Any, err: ResourceAny) -> str | None:
    return call.table.get(store, err, IoError).code


_D = "[method]descriptor."
INTERFACES = (
    Interface("wasi:filesystem/preopens", {}, {"get-directories": _directories}),
    Interface(
        "wasi:filesystem/types",
        {"descriptor": Kind.DESCRIPTOR, "directory-entry-stream": Kind.DIRECTORY_ENTRY_STREAM},
        {
            _D + "read-via-stream": _fs(_read_via_stream),
            _D + "write-via-stream": _fs(_write_via_stream),
            _D + "append-via-stream": _fs(_append_via_stream),
            _D + "advise": _fs(_nothing),
            _D + "sync-data": _fs(_nothing),
            _D + "sync": _fs(_nothing),
            _D + "get-flags": _fs(_get_flags),
            _D + "get-type": _fs(_get_type),
            _D + "set-size": _fs(_set_size),
            _D + "set-times": _fs(_set_times),
            _D + "read": _fs(_read),
            _D + "write": _fs(_write),
            _D + "read-directory": _fs(_read_directory),
            _D + "create-directory-at": _fs(_create_directory_at),
            _D + "stat": _fs(_stat),
            _D + "stat-at": _fs(_stat_at),
            _D + "set-times-at": _fs(_set_times_at),
            _D + "link-at": _fs(_not_permitted),
            _D + "open-at": _fs(_open_at),
            _D + "readlink-at": _fs(_readlink_at),
            _D + "remove-directory-at": _fs(_remove_directory_at),
            _D + "rename-at": _fs(_rename_at),
            _D + "symlink-at": _fs(_not_permitted),
            _D + "unlink-file-at": _fs(_unlink_file_at),
            _D + "is-same-object": _is_same_object,
            _D + "metadata-hash": _fs(_metadata_hash),
            _D + "metadata-hash-at": _fs(_metadata_hash_at),
            "[method]directory-entry-stream.read-directory-entry": _next_entry,
            "filesystem-error-code": _error_code,
        },
    ),
)
