"""Builds (once) and caches the guest kernel from Debian's linux-source tarball and our fragment."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Final, TextIO

from unikernel.errors import ImageBuildError

__all__ = [
    "FRAGMENT",
    "KERNEL_BUILDER_VERSION",
    "REQUIRED_OPTIONS",
    "ensure_kernel",
    "ensure_kernel_elf",
    "find_kernel_source",
    "kernel_cache_key",
    "parse_kconfig",
]

# Bump when the recipe changes in a way the cache key cannot see (steps, flags, outputs).
KERNEL_BUILDER_VERSION: Final = "1"
FRAGMENT: Final = Path(__file__).parent / "assets" / "kernel.config"
SOURCE_DIR: Final = Path("/usr/src")
SOURCE_PACKAGE: Final = "linux-source-6.1"

# What the guest cannot do without, checked against the final .config: Kconfig
# drops an option silently when a dependency is missing, and the symptom would
# otherwise be a guest that hangs or an agent that dies at start. "y" must be
# set, "n" must be unset. The fragment is checked as well; this list stays
# here so that editing the fragment cannot quietly remove a requirement.
REQUIRED_OPTIONS: Final[Mapping[str, str]] = {
    # boot and platform
    "64BIT": "y",
    "PVH": "y",
    "HYPERVISOR_GUEST": "y",
    "PARAVIRT": "y",
    "KVM_GUEST": "y",
    "X86_TSC": "y",
    "HZ_100": "y",
    "NO_HZ_IDLE": "y",
    "RANDOM_TRUST_CPU": "y",
    "KERNEL_LZ4": "y",
    "CMDLINE_BOOL": "y",
    # PID 1 from an uncompressed initramfs
    "BINFMT_ELF": "y",
    "BINFMT_SCRIPT": "y",
    "BLK_DEV_INITRD": "y",
    "DEVTMPFS": "y",
    "PROC_FS": "y",
    "SYSFS": "y",
    "TMPFS": "y",
    # CPython and wasmtime
    "MULTIUSER": "y",
    "FUTEX": "y",
    "EPOLL": "y",
    "EVENTFD": "y",
    "SIGNALFD": "y",
    "TIMERFD": "y",
    "POSIX_TIMERS": "y",
    "SHMEM": "y",
    "MEMFD_CREATE": "y",
    "ADVISE_SYSCALLS": "y",
    "MEMBARRIER": "y",
    "FILE_LOCKING": "y",
    # console and host channel
    "TTY": "y",
    "PRINTK": "y",
    "SERIAL_8250": "y",
    "SERIAL_8250_CONSOLE": "y",
    "VIRTIO": "y",
    "VIRTIO_MMIO": "y",
    "VIRTIO_MMIO_CMDLINE_DEVICES": "y",
    "PCI": "y",
    "VIRTIO_PCI": "y",
    "VIRTIO_CONSOLE": "y",
    # freed guest memory goes back to the host
    "VIRTIO_BALLOON": "y",
    "PAGE_REPORTING": "y",
    "HUGETLB_PAGE": "y",
    # left out on purpose
    "MODULES": "n",
    "SMP": "n",
    "ACPI": "n",
    "NET": "n",
    "BLOCK": "n",
    "UNIX98_PTYS": "n",
}

# Host tools the build runs, with the Debian package that provides each.
_TOOLS: Final[Mapping[str, str]] = {
    "tar": "tar",
    "xz": "xz-utils",
    "make": "make",
    "gcc": "gcc",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "lz4": "lz4",
    "strip": "binutils",
    "perl": "perl",
}
_LOG_TAIL_LINES: Final = 60
_PROGRESS_EVERY_S: Final = 15.0
_OPTION_RE: Final = re.compile(r"^(CONFIG_\w+)=(.*)$")
_UNSET_RE: Final = re.compile(r"^# (CONFIG_\w+) is not set$")


def _failed(stage: str, message: str, log_tail: str = "") -> ImageBuildError:
    return ImageBuildError(stage, message, log_tail, part="kernel")


def parse_kconfig(text: str) -> dict[str, str]:
    """Map CONFIG_ names to values; ``# CONFIG_X is not set`` becomes ``"n"``."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _OPTION_RE.match(line):
            options[m[1]] = m[2]
        elif m := _UNSET_RE.match(line):
            options[m[1]] = "n"
    return options


def _version_tuple(tarball: Path) -> tuple[int, ...]:
    m = re.fullmatch(r"linux-source-([\d.]+)\.tar\.xz", tarball.name)
    return tuple(int(p) for p in m[1].split(".") if p) if m else ()


def find_kernel_source(source_dir: Path = SOURCE_DIR) -> Path:
    """The linux-source tarball to build from: 6.1 (what the fragment targets) if present."""
    found = sorted(source_dir.glob("linux-source-*.tar.xz"), key=_version_tuple)
    if not found:
        raise _failed(
            "source",
            f"no {source_dir}/linux-source-*.tar.xz; "
            f"install it with `apt-get install {SOURCE_PACKAGE}`",
        )
    preferred = [p for p in found if p.name == f"{SOURCE_PACKAGE}.tar.xz"]
    return preferred[0] if preferred else found[-1]


def kernel_cache_key(fragment: bytes, tarball: Path) -> str:
    h = hashlib.sha256()
    for part in (
        KERNEL_BUILDER_VERSION.encode(),
        fragment,
        tarball.name.encode(),
        str(tarball.stat().st_size).encode(),
    ):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def ensure_kernel(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Path of the cached, LZ4-compressed ``bzImage``; built on first use (~2.5 min on 2 cores)."""
    return _ensure_built(cache_dir, progress) / "bzImage"


def ensure_kernel_elf(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Path of the same kernel as a stripped, uncompressed ``vmlinux``.

    QEMU boots it through its PVH ELF note with no decompression step, which is
    faster than the ``bzImage`` under TCG; it is produced by the same build.
    """
    return _ensure_built(cache_dir, progress) / "vmlinux"


def _ensure_built(cache_dir: Path, progress: Callable[[str], None]) -> Path:
    fragment = FRAGMENT.read_bytes()
    tarball = find_kernel_source()
    kernel_root = cache_dir / "kernel"
    out_dir = kernel_root / kernel_cache_key(fragment, tarball)
    # bzImage is installed last, so its presence means the whole set is there.
    if (out_dir / "bzImage").is_file():
        return out_dir

    kernel_root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(kernel_root / ".lock", progress):
        if (out_dir / "bzImage").is_file():
            return out_dir
        # Holding the lock, any leftover build tree is from a builder that died.
        for stale in kernel_root.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        _build(tarball, fragment, kernel_root, out_dir, progress)
    return out_dir


@contextlib.contextmanager
def _exclusive_lock(path: Path, progress: Callable[[str], None]) -> Iterator[None]:
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"kernel: another process is building; waiting for {path}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_tools() -> None:
    missing = {tool: pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None}
    if missing:
        raise _failed(
            "tools",
            f"missing {', '.join(sorted(missing))}; install them with "
            f"`apt-get install {' '.join(sorted(set(missing.values())))}`",
        )


class _Builder:
    """Runs the build steps, all output going to one log file."""

    def __init__(self, log: TextIO, log_path: Path, progress: Callable[[str], None]) -> None:
        self.log = log
        self.log_path = log_path
        self.progress = progress
        self.started = time.monotonic()
        self.env = {
            **os.environ,
            "LC_ALL": "C",
            # Fixed identity and date in the version banner keep rebuilds comparable.
            "KBUILD_BUILD_USER": "unifaas",
            "KBUILD_BUILD_HOST": "unifaas",
            "KBUILD_BUILD_TIMESTAMP": "1970-01-01",
        }

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"

    def run(self, stage: str, argv: list[str], cwd: Path, *, count_progress: bool = False) -> None:
        self.progress(f"kernel: {stage} ({self.elapsed()})")
        self.log.write(f"\n=== {stage}: {' '.join(argv)}\n")
        self.log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise _failed(stage, f"cannot run {argv[0]}: {exc}") from exc
        assert proc.stdout is not None
        steps = 0
        next_report = time.monotonic() + _PROGRESS_EVERY_S
        with proc:
            for line in proc.stdout:
                self.log.write(line)
                if count_progress and line.startswith("  "):
                    steps += 1
                    if time.monotonic() >= next_report:
                        next_report += _PROGRESS_EVERY_S
                        self.progress(f"kernel: {stage}: {steps} steps done ({self.elapsed()})")
        self.log.flush()
        if proc.returncode != 0:
            raise _failed(
                stage,
                f"{argv[0]} exited with {proc.returncode} (full log: {self.log_path})",
                self.tail(),
            )

    def tail(self) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def _verify_config(config_text: str, fragment: bytes) -> None:
    final = parse_kconfig(config_text)
    wanted = {f"CONFIG_{k}": v for k, v in REQUIRED_OPTIONS.items()}
    wanted.update(parse_kconfig(fragment.decode()))
    wrong = [
        f"{name}: wanted {value}, got {final.get(name, 'n')}"
        for name, value in sorted(wanted.items())
        if final.get(name, "n") != value
    ]
    if wrong:
        raise _failed(
            "verify",
            f"{len(wrong)} option(s) lost to Kconfig dependencies; fix {FRAGMENT.name}",
            "\n".join(wrong),
        )


def _install(src: Path, dest: Path) -> None:
    # Copy beside the destination, then rename: readers never see a partial file.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _build(
    tarball: Path,
    fragment: bytes,
    kernel_root: Path,
    out_dir: Path,
    progress: Callable[[str], None],
) -> None:
    _check_tools()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "build.log"
    build_root = Path(tempfile.mkdtemp(dir=kernel_root, prefix=".build-"))
    try:
        with log_path.open("w") as log:
            b = _Builder(log, log_path, progress)
            progress(f"kernel: building from {tarball.name} into {out_dir} (log: {log_path})")
            b.run(
                "extract",
                ["tar", "-xf", str(tarball), "-C", str(build_root), "--strip-components=1"],
                build_root,
            )
            src = build_root
            frag_path = build_root / "unifaas.config"
            frag_path.write_bytes(fragment)
            b.run("tinyconfig", ["make", "tinyconfig"], src)
            b.run(
                "merge",
                ["scripts/kconfig/merge_config.sh", "-m", ".config", str(frag_path)],
                src,
            )
            b.run("olddefconfig", ["make", "olddefconfig"], src)
            progress(f"kernel: verify ({b.elapsed()})")
            _verify_config((src / ".config").read_text(), fragment)
            jobs = str(len(os.sched_getaffinity(0)))
            b.run("compile", ["make", f"-j{jobs}", "bzImage"], src, count_progress=True)
            b.run("strip", ["strip", "-o", "vmlinux.stripped", "vmlinux"], src)
            progress(f"kernel: install ({b.elapsed()})")
            _install(src / ".config", out_dir / "config")
            _install(src / "vmlinux.stripped", out_dir / "vmlinux")
            _install(src / "arch" / "x86" / "boot" / "bzImage", out_dir / "bzImage")
            size_kib = (out_dir / "bzImage").stat().st_size // 1024
            progress(f"kernel: done, bzImage {size_kib} KiB ({b.elapsed()})")
    finally:
        progress("kernel: removing build tree")
        shutil.rmtree(build_root, ignore_errors=True)
