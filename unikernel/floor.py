"""Builds the cached "do-nothing init" initramfs used to measure the boot floor and probe KVM."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from unikernel.cpio import CharDev, Dir, File, write_newc
from unikernel.errors import ImageBuildError

__all__ = [
    "FLOOR_MAGIC",
    "ensure_floor_initramfs",
]

#: What the floor init writes to the agent port right before it reboots the guest.
FLOOR_MAGIC: Final = b"UFFLOOR\n"

# Bump when the image layout or the build recipe changes in a way the hash cannot see.
FLOOR_BUILDER_VERSION: Final = "1"
SOURCE: Final = Path(__file__).parent / "assets" / "floor_init.c"
CFLAGS: Final = (
    "-static",
    "-nostdlib",
    "-Os",
    "-s",
    "-fno-pie",
    "-no-pie",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
)
_LOG_TAIL_LINES: Final = 40


def _failed(stage: str, message: str, log_tail: str = "") -> ImageBuildError:
    return ImageBuildError(stage, message, log_tail, part="floor init")


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise _failed("compile", "gcc not found; install it with `apt-get install gcc libc6-dev`")
    return gcc


def _gcc_identity(gcc: str) -> bytes:
    # The version line plus target triple: a different compiler may emit different code.
    try:
        version = subprocess.run(
            [gcc, "--version"], capture_output=True, check=True, timeout=30
        ).stdout.splitlines()[0]
        machine = subprocess.run(
            [gcc, "-dumpmachine"], capture_output=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise _failed("compile", f"cannot run {gcc}: {exc}") from exc
    return version + b"\0" + machine


def _cache_key(source: bytes, gcc_identity: bytes) -> str:
    h = hashlib.sha256()
    for part in (FLOOR_BUILDER_VERSION.encode(), source, gcc_identity, " ".join(CFLAGS).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def _compile(gcc: str, source: Path, out: Path) -> bytes:
    try:
        proc = subprocess.run(
            [gcc, *CFLAGS, "-o", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _failed("compile", f"cannot run {gcc}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-_LOG_TAIL_LINES:])
        raise _failed("compile", f"gcc exited with {proc.returncode}", tail)
    return out.read_bytes()


def ensure_floor_initramfs(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Return the cached floor initramfs (newc, uncompressed), building it when missing.

    The image holds ``/init`` (the static floor program), ``/dev`` and
    ``/dev/console``; it lives at ``cache_dir/floor/<key>/initramfs.cpio`` where
    the key hashes the C source, the compiler and its flags.
    """
    gcc = _gcc()
    source = SOURCE.read_bytes()
    key = _cache_key(source, _gcc_identity(gcc))
    target_dir = cache_dir / "floor" / key
    target = target_dir / "initramfs.cpio"
    if target.is_file():
        return target

    progress(f"floor init: compiling {SOURCE.name}")
    target_dir.mkdir(parents=True, exist_ok=True)
    # Concurrent builders produce identical bytes; the atomic rename makes the race harmless.
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".build-") as tmp:
        binary = _compile(gcc, SOURCE, Path(tmp) / "init")
        image = write_newc(
            [
                File("init", binary, 0o755),
                Dir("dev", 0o755),
                # The kernel opens /dev/console for PID 1's stdio before /dev is mounted.
                CharDev("dev/console", 5, 1, 0o600),
            ]
        )
        staged = Path(tmp) / "initramfs.cpio"
        staged.write_bytes(image)
        os.replace(staged, target)
    progress(f"floor init: {target} ({len(image)} bytes)")
    return target
