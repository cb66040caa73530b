"""Build the guest image: the tiny kernel plus an initramfs whose PID 1 is the Python agent.

The initramfs holds only what the agent was *seen* to need: the interpreter
and the shared libraries it links (by ``ldd``), the stdlib modules imported by
an end-to-end self-test of the agent (``wasm_runtime.selftest``, run with the
guest's own flags), compiled and stored in an uncompressed zip, and the
wasmtime, msgpack and wasm_runtime packages. No shell, no init system.

Layout inside the guest::

    /init                          "#!/usr/bin/python3 -SuB" script starting the agent
    /usr/bin/python3               the host's interpreter (same ABI as the wheels)
    /usr/lib/python311.zip         traced stdlib, sourceless .pyc, ZIP_STORED (no zlib needed)
    /usr/lib/python3.11/lib-dynload/*.so
    /opt/unifaas/{wasm_runtime,wasmtime,msgpack}/
    <every shared library at the path ldd resolved it to>

Images are cached under ``<cache_dir>/images/<key>/`` where the key hashes
everything that goes in; a second build with the same inputs is a lookup.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from unikernel import cpio
from unikernel.errors import ImageBuildError
from unikernel.floor import ensure_floor_initramfs
from unikernel.kernel import ensure_kernel_elf
from unikernel.settings import VMSettings

IMAGE_BUILDER_VERSION = "1"
GUEST_PKG_DIR = "/opt/unifaas"
GUEST_PYTHON = "/usr/bin/python3"
GUEST_STDLIB_ZIP = "/usr/lib/python311.zip"
GUEST_DYNLOAD = "/usr/lib/python3.11/lib-dynload"
# Packages copied from the host besides the stdlib, by top-level name.
GUEST_PACKAGES = ("wasm_runtime", "wasmtime", "msgpack")
# Imported at interpreter start-up before any tracing could see them under -S
# in some locales; cheap insurance.
ALWAYS_STDLIB = (
    "encodings",
    "encodings.aliases",
    "encodings.utf_8",
    "encodings.ascii",
    "encodings.latin_1",
)
INIT_SCRIPT = f"""#!{GUEST_PYTHON} -SuB
import sys
sys.path.insert(0, "{GUEST_PKG_DIR}")
from wasm_runtime.agent import main
main()
"""
Progress = Callable[[str], None]
# What a prebuilt directory holds: the kernel QEMU boots and the do-nothing initramfs.
PREBUILT_FILES = ("vmlinux", "floor.cpio")


@dataclasses.dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    floor_initrd: Path  # same kernel, do-nothing init: boot floor and KVM probe
    key: str

    @property
    def initrd_bytes(self) -> int:
        return self.initrd.stat().st_size


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImageBuildError("inputs", f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _host_python() -> Path:
    return Path(os.path.realpath(sys.executable))


def _image_key(kernel: Path) -> str:
    h = hashlib.sha256()
    h.update(IMAGE_BUILDER_VERSION.encode())
    h.update(sys.version.encode())
    h.update(str(_host_python()).encode())
    h.update(sha256_file(kernel).encode())
    for name in GUEST_PACKAGES:
        root = _package_dir(name)
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                stat = path.stat()
                h.update(f"{path.relative_to(root)}:{stat.st_size}".encode())
                if name == "wasm_runtime":  # our own sources change often and in place
                    h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _trace_modules() -> list[dict[str, object]]:
    """Run the agent self-test the way the guest runs Python and list what it imported."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(
            sorted({str(_package_dir(n).parent) for n in GUEST_PACKAGES})
        ),
        "PYTHONHASHSEED": "0",
    }
    cmd = [str(_host_python()), "-S", "-B", "-c", "import wasm_runtime.selftest as s; s.main()"]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(
            "trace",
            "agent self-test failed on the host",
            proc.stderr.decode(errors="replace")[-4000:],
        )
    modules: list[dict[str, object]] = json.loads(proc.stdout)
    return modules


def _pyc(source: Path) -> bytes:
    """Sourceless, unchecked-hash pyc: valid without its .py and without mtimes."""
    data = source.read_bytes()
    code = compile(data, str(source), "exec", dont_inherit=True, optimize=1)
    flags = (1).to_bytes(4, "little")  # hash-based, do not check source
    return (
        importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(data) + marshal.dumps(code)
    )


def _ldd(path: Path) -> list[Path]:
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # "not a dynamic executable" for static objects
        return []
    libs = []
    for line in proc.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


def _strip(src: Path, dst: Path) -> None:
    if shutil.which("strip"):
        result = subprocess.run(
            ["strip", "--strip-unneeded", "-o", str(dst), str(src)],
            capture_output=True,
            check=False,
        )
        if result.returncode == 0:
            return
    shutil.copyfile(src, dst)


class _Collector:
    """Accumulates the image's entries, stripping shared objects into a scratch dir."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.entries: dict[str, cpio.Entry] = {}
        self.dirs: set[str] = set()
        self.shared_objects: list[Path] = []

    def _parents(self, guest_path: str) -> None:
        parent = os.path.dirname(guest_path)
        while parent not in ("", "/") and parent not in self.dirs:
            self.dirs.add(parent)
            parent = os.path.dirname(parent)

    def add_bytes(self, guest_path: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(guest_path)
        self.entries[guest_path] = cpio.File(guest_path, data, mode)

    def add_host(self, guest_path: str, source: Path, mode: int = 0o644) -> None:
        self._parents(guest_path)
        if source.suffix == ".so" or ".so." in source.name:
            stripped = self.scratch / hashlib.sha256(guest_path.encode()).hexdigest()[:16]
            _strip(source, stripped)
            self.shared_objects.append(source)
            source, mode = stripped, 0o755
        self.entries[guest_path] = cpio.HostFile(guest_path, source, mode)

    def all_entries(self) -> Iterator[cpio.Entry]:
        for d in sorted(self.dirs | {"/dev", "/proc", "/tmp"}):
            yield cpio.Dir(d)
        yield cpio.CharDev("/dev/console", 5, 1)
        for path in sorted(self.entries):
            yield self.entries[path]


def _collect(modules: list[dict[str, object]], scratch: Path, progress: Progress) -> _Collector:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    dynload = stdlib / "lib-dynload"
    pkg_roots = {name: _package_dir(name).resolve() for name in GUEST_PACKAGES}
    col = _Collector(scratch)
    zip_members: dict[str, bytes] = {}
    names = {str(m["name"]) for m in modules}
    for name in ALWAYS_STDLIB:
        if name not in names:
            spec = importlib.util.find_spec(name)
            if spec and spec.origin:
                modules.append(
                    {
                        "name": name,
                        "file": spec.origin,
                        "package": spec.submodule_search_locations is not None,
                    }
                )
    for mod in modules:
        file = mod.get("file")
        if not isinstance(file, str):
            continue  # built-in or frozen
        path = Path(file).resolve()
        pkg = next((n for n, root in pkg_roots.items() if path.is_relative_to(root)), None)
        if pkg is not None:
            rel = path.relative_to(pkg_roots[pkg].parent)
            if path.suffix == ".py":
                # Sourceless .pyc beside where the .py was: imported without compiling.
                col.add_bytes(f"{GUEST_PKG_DIR}/{rel.with_suffix('.pyc')}", _pyc(path))
            else:
                col.add_host(f"{GUEST_PKG_DIR}/{rel}", path)
        elif path.is_relative_to(dynload):
            col.add_host(f"{GUEST_DYNLOAD}/{path.name}", path)
        elif path.is_relative_to(stdlib) and path.suffix == ".py":
            zip_members[str(path.relative_to(stdlib).with_suffix(".pyc"))] = _pyc(path)
        else:
            raise ImageBuildError("collect", f"module {mod['name']} from unexpected place {path}")
    # Shared libraries the package modules load through ctypes, not imports.
    for root in pkg_roots.values():
        for so in sorted(root.rglob("*.so")):
            if "_libwasmtime" in so.name:
                rel = so.relative_to(root.parent)
                col.add_host(f"{GUEST_PKG_DIR}/{rel}", so)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for member in sorted(zip_members):
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, zip_members[member])
    col.add_bytes(GUEST_STDLIB_ZIP, buf.getvalue())
    progress(f"  stdlib: {len(zip_members)} modules; packages: {', '.join(GUEST_PACKAGES)}")
    python = _host_python()
    col.add_host(GUEST_PYTHON, python, 0o755)
    # The ldd closure of the interpreter and of every extension module, each
    # library at the very path ldd resolved, so RUNPATHs keep working.
    seen: set[Path] = set()
    todo = [python, *col.shared_objects]
    while todo:
        obj = todo.pop()
        for lib in _ldd(obj):
            if lib not in seen:
                seen.add(lib)
                col.add_host(str(lib), lib.resolve())
                todo.append(lib.resolve())
    progress(f"  shared libraries: {len(seen)}")
    col.add_bytes("/init", INIT_SCRIPT.encode(), 0o755)
    return col


# Every change to wasm_runtime makes a new ~40 MB image; keep a few recent
# ones (another checkout may still use one) and drop the rest.
IMAGES_KEPT = 3


def _prune_images(images_dir: Path, keep: Path) -> None:
    entries = [p for p in images_dir.iterdir() if p.is_dir() and p != keep]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[IMAGES_KEPT - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def guest_image(settings: VMSettings, progress: Progress = print) -> GuestImage:
    """The guest image ``settings`` ask for (see :func:`ensure_image`)."""
    return ensure_image(settings.cache_dir, progress, prebuilt=settings.prebuilt_dir)


def prebuilt_parts(prebuilt: Path) -> tuple[Path, Path]:
    """The kernel and floor initramfs a prebuilt directory holds (``PREBUILT_FILES``)."""
    kernel, floor = (prebuilt / name for name in PREBUILT_FILES)
    missing = [p.name for p in (kernel, floor) if not p.is_file()]
    if missing:
        raise ImageBuildError(
            "inputs", f"{prebuilt} (UNIFAAS_VM_PREBUILT_DIR) has no {' or '.join(missing)}"
        )
    return kernel, floor


def ensure_image(
    cache_dir: Path, progress: Progress = print, *, prebuilt: Path | None = None
) -> GuestImage:
    """Return the cached guest image, building whatever part of it is missing.

    ``prebuilt``: take the kernel and floor from there instead of building them; the
    agent's initramfs is then cached (or built) as usual, keyed by that kernel.
    """
    started = time.perf_counter()
    if prebuilt is not None:
        kernel, floor = prebuilt_parts(prebuilt)
    else:
        # The uncompressed ELF boots ~35 ms faster than the bzImage (PVH entry,
        # nothing to decompress).
        kernel = ensure_kernel_elf(cache_dir, progress)
        floor = ensure_floor_initramfs(cache_dir, progress)
    key = _image_key(kernel)
    out_dir = cache_dir / "images" / key
    initrd = out_dir / "initramfs.cpio"
    image = GuestImage(kernel=kernel, initrd=initrd, floor_initrd=floor, key=key)
    if initrd.exists():
        return image
    out_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / "images" / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if initrd.exists():
            return image
        progress(f"building guest image {key}: tracing the agent's imports")
        modules = _trace_modules()
        with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
            progress("  collecting interpreter, stdlib, packages and libraries")
            col = _collect(modules, Path(scratch), progress)
            tmp = out_dir / "initramfs.cpio.tmp"
            with tmp.open("wb") as out:
                cpio.write_newc_to(out, col.all_entries())
            tmp.rename(initrd)
        _prune_images(cache_dir / "images", out_dir)
    progress(
        f"guest image ready in {time.perf_counter() - started:.1f}s: "
        f"{initrd} ({initrd.stat().st_size / 1e6:.1f} MB)"
    )
    return image
