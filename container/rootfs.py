"""The image's Debian root: made by debootstrap from Debian's archive, kept as a tarball per
package list, unpacked fresh for each build, worked on in a chroot, slimmed, packed again.

Why debootstrap and not a base image: this machine reaches Debian's archive, not a
container registry, and a root built from the archive holds exactly the packages named
here (no recommends, no init system), each from the same release the project is tested on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from container.commands import run
from container.errors import ContainerError
from container.settings import ContainerSettings

Progress = Callable[[str], None]
# Bump when the recipe changes in a way the package list does not show.
ROOTFS_VERSION = "1"
# What every role runs: the interpreter (python3-venv for the project's venv), the
# hypervisor, the state store, and useradd/usermod for the VM user's ids. Nothing to build
# with: the guest kernel and floor come from the host, already built.
PACKAGES = ("python3", "python3-venv", "qemu-system-x86", "redis-server", "passwd")
# Paths dropped from the root: documentation (keeping each package's copyright), manuals,
# translations, ISO code tables (pulled in by QEMU's audio libraries), glibc's iconv
# modules, the wheels and setuptools that only making a venv needs, apt's lists and
# caches, logs. Nothing at run time reads them.
SLIM_GLOBS = (
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/share/python-wheels",
    "opt/unifaas/venv/lib/python3*/site-packages/setuptools*",
    "opt/unifaas/venv/lib/python3*/site-packages/_distutils_hack",
    "opt/unifaas/venv/lib/python3*/site-packages/distutils-precedence.pth",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/iso-codes",
    "usr/share/xml/iso-codes",
    "usr/share/lintian",
    "usr/share/bash-completion",
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/log/*",
    "tmp/*",
)


def base_key(settings: ContainerSettings) -> str:
    h = hashlib.sha256()
    for part in (ROOTFS_VERSION, settings.suite, settings.mirror, *PACKAGES):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Base:
    tarball: Path
    python_version: str  # the root's interpreter, e.g. "3.11.2": wheels' markers need it


def ensure_base(settings: ContainerSettings, progress: Progress) -> Base:
    """The cached tarball of the Debian root, made by debootstrap when missing."""
    cache = settings.cache_dir
    tarball = cache / f"base-{base_key(settings)}.tar"
    version_file = tarball.with_suffix(".python")
    if tarball.is_file() and version_file.is_file():
        return Base(tarball, version_file.read_text().strip())
    debs = cache / "debs"  # debootstrap's downloads, kept for the next package list
    debs.mkdir(parents=True, exist_ok=True)
    scratch = cache / f".base-{base_key(settings)}"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.monotonic()
    progress(f"debootstrap {settings.suite} (minbase + {', '.join(PACKAGES)}) ...")
    try:
        run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}", settings.suite, str(scratch), settings.mirror,
            ],
            "debootstrap",
        )  # fmt: skip
        progress(f"  root made in {time.monotonic() - started:.0f} s; packing it")
        version = _python_version(scratch)
        pack(scratch, tarball.with_suffix(".tmp"))
        version_file.write_text(version + "\n")
        tarball.with_suffix(".tmp").rename(tarball)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Base(tarball, version)


def _python_version(root: Path) -> str:
    """The upstream version of the root's python3 (its dpkg record), e.g. 3.11.2."""
    status = (root / "var/lib/dpkg/status").read_text()
    for record in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        if (
            fields.get("Package", "").startswith("python3.")
            and fields["Package"].endswith("-minimal")
            and fields["Package"].count("-") == 1
        ):
            match = re.match(r"(\d+\.\d+\.\d+)", fields.get("Version", ""))
            if match:
                return match.group(1)
    raise ContainerError("debootstrap", "the root has no python3.X-minimal package")


def unpack(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)], "unpack")


def pack(root: Path, tarball: Path) -> None:
    run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], "pack")


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc and /dev inside ``root`` for the chroot's steps, unmounted on every way out."""
    done: list[Path] = []
    try:
        for source, target, args in (
            ("proc", root / "proc", ["-t", "proc"]),
            ("/dev", root / "dev", ["--bind"]),
        ):
            target.mkdir(exist_ok=True)
            run(["mount", *args, source, str(target)], "mount")
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "--lazy", str(target)], check=False, capture_output=True)


def in_chroot(root: Path, script: str, stage: str, env: dict[str, str] | None = None) -> str:
    """Run a shell script inside the root (with /proc and /dev mounted by the caller)."""
    assignments = [f"{k}={v}" for k, v in (env or {}).items()]
    return run(
        ["chroot", str(root), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
         "HOME=/root", "LANG=C.UTF-8", *assignments, "/bin/sh", "-ec", script],
        stage,
    )  # fmt: skip


def slim(root: Path) -> None:
    for pattern in SLIM_GLOBS:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    doc = root / "usr/share/doc"
    for path in sorted(doc.rglob("*"), reverse=True):
        if path.is_symlink() or (path.is_file() and path.name != "copyright"):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def strip_shared_objects(tree: Path) -> int:
    """Strip the shared objects under ``tree`` with the host's strip (the root has no
    binutils); returns the bytes saved. wasmtime's library ships unstripped (30 MB, 24
    stripped), and the guest's initramfs copies what it finds here."""
    if shutil.which("strip") is None:
        return 0
    saved = 0
    for path in tree.rglob("*.so*"):
        if not path.is_file() or path.is_symlink():
            continue
        before = path.stat().st_size
        done = subprocess.run(
            ["strip", "--strip-unneeded", str(path)], capture_output=True, check=False
        )
        if done.returncode == 0:
            saved += before - path.stat().st_size
    return saved
