"""``unifaas image container``: the platform's image, built offline and tagged by content.

Steps, each timed: the Debian root (cached tarball) unpacked; the project's wheel and its
dependencies' wheels at the versions installed here (so the image runs what the tests ran)
installed into a venv inside it; the VM user and its ids; the guest kernel and floor built
here copied in and the agent's initramfs built inside it by its own Python (the guest's
interpreter is the image's); slimmed; packed and imported with the spec's metadata.

The content key hashes every input (the root's package list, the wheels' names and
versions, the project's sources, the guest kernel and floor, the recipe and the spec), so
a second build of the same inputs is ``docker image inspect`` and nothing more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from container import rootfs
from container.commands import run
from container.docker import Docker
from container.errors import ContainerError
from container.settings import ContainerSettings
from container.spec import CACHE_DIR, GUEST_DIR, KEY_LABEL, LATEST, NAME, SPEC, VENV
from unikernel.floor import ensure_floor_initramfs
from unikernel.image import PREBUILT_FILES, sha256_file
from unikernel.kernel import ensure_kernel_elf
from unikernel.settings import VMSettings

Progress = Callable[[str], None]
BUILD_VERSION = "1"
IMAGES_KEPT = 3  # the newest images of this project kept, the one just built among them
PROJECT = "unifaas"
# Not hashed into the key: outputs and caches that do not go into the wheel.
SKIPPED_PARTS = {"__pycache__", "node_modules", ".mypy_cache", "build"}


@dataclasses.dataclass(frozen=True)
class BuildResult:
    tag: str  # unifaas:<key>
    key: str
    size_bytes: int
    seconds: float
    cached: bool  # the image of these inputs was already there
    steps: tuple[tuple[str, float], ...] = ()  # (step, seconds) of a build that ran


def source_root() -> Path:
    """The checkout this package runs from (the image is built from a source tree)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ContainerError("inputs", f"{root} is not a unifaas checkout (no pyproject.toml)")
    return root


def _package_dirs(root: Path) -> list[Path]:
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(root / p.rstrip("*") for p in patterns)


def _source_files(root: Path) -> Iterator[Path]:
    yield root / "pyproject.toml"
    yield root / "scripts" / "vm-user.sh"
    for directory in _package_dirs(root):
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(root).parts
            if path.is_file() and not SKIPPED_PARTS & set(rel) and path.suffix != ".pyc":
                yield path


def runtime_requirements(python_version: str) -> list[str]:
    """What the project needs at run time (no extras) under the image's Python: each
    distribution installed here pinned to its version here (the image runs what the tests
    ran), and, for one only the image's Python needs (a marker on its version), the
    requirement as written, for pip to resolve."""
    environment = {
        "extra": "",
        "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]),
    }
    seen: dict[str, str] = {}
    todo = [PROJECT]
    while todo:
        name = todo.pop()
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(environment):
                continue
            key = canonicalize_name(req.name)
            if key in seen:
                continue
            try:
                seen[key] = f"{key}=={metadata.version(req.name)}"
            except metadata.PackageNotFoundError:
                req.marker = None
                seen[key] = str(req)
                continue
            todo.append(req.name)
    return sorted(seen.values())


def content_key(
    settings: ContainerSettings, root: Path, requirements: list[str], guest: list[Path]
) -> str:
    h = hashlib.sha256()
    for part in (BUILD_VERSION, rootfs.base_key(settings), *requirements, *SPEC.changes("")):
        h.update(part.encode() + b"\0")
    for path in (*_source_files(root), *guest):
        name = path.relative_to(root) if path.is_relative_to(root) else path.name
        h.update(f"{name}\0{sha256_file(path)}\0".encode())
    return h.hexdigest()[:16]


class _Steps:
    """The build's steps, each announced, timed and kept for the result."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.done: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[None]:
        self.progress(f"[{len(self.done) + 1}] {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = round(time.monotonic() - started, 1)
            self.done.append((name, seconds))
            self.progress(f"    {seconds:.1f} s")


def build(
    settings: ContainerSettings | None = None, *, force: bool = False, progress: Progress = print
) -> BuildResult:
    """Build (or find) the image of this checkout; tags it ``unifaas:<key>`` and latest."""
    settings = settings or ContainerSettings()
    started = time.monotonic()
    check_tools()
    docker = Docker(settings.docker)
    root = source_root()
    vm_settings = VMSettings()
    kernel = ensure_kernel_elf(vm_settings.cache_dir, progress)
    floor = ensure_floor_initramfs(vm_settings.cache_dir, progress)
    base = rootfs.ensure_base(settings, progress)
    requirements = runtime_requirements(base.python_version)
    key = content_key(settings, root, requirements, [kernel, floor])
    tag = f"{NAME}:{key}"
    found = None if force else docker.inspect_image(tag)
    if found is not None:
        docker.tag(tag, LATEST)
        progress(f"{tag} is built already (same inputs); tagged {LATEST}")
        return BuildResult(tag, key, found.size_bytes, time.monotonic() - started, True)

    steps = _Steps(progress)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.cache_dir, prefix=".build-") as tmp:
        work = Path(tmp)
        with steps.run("unpack the Debian root (debootstrap's, cached by package list)"):
            image_root = work / "root"
            rootfs.unpack(base.tarball, image_root)
        with steps.run(f"wheels: the project and {len(requirements)} dependencies"):
            wheels = image_root / "tmp" / "wheels"
            _wheels(root, requirements, wheels)
        with rootfs.mounted(image_root):
            with steps.run("venv, the VM user"):
                _install(root, image_root)
            with steps.run("guest: kernel and floor copied in, the agent's initramfs built"):
                saved = rootfs.strip_shared_objects(image_root / VENV.lstrip("/"))
                progress(f"    stripped {saved / 1e6:.1f} MB of shared objects")
                _bake_guest(image_root, kernel, floor)
        with steps.run("slim"):
            rootfs.slim(image_root)
        with steps.run("pack and docker import"):
            tarball = work / "image.tar"
            rootfs.pack(image_root, tarball)
            shutil.rmtree(image_root)
            docker.import_tar(tarball, tag, SPEC.changes(key))
            docker.tag(tag, LATEST)
    inspected = docker.inspect_image(tag)
    if inspected is None:
        raise ContainerError("import", f"{tag} is not there after the import")
    _prune(docker, keep=tag)
    seconds = time.monotonic() - started
    progress(f"{tag} ({inspected.size_bytes / 1e6:.0f} MB) built in {seconds:.0f} s")
    return BuildResult(tag, key, inspected.size_bytes, seconds, False, tuple(steps.done))


def _wheels(root: Path, requirements: list[str], out: Path) -> None:
    """The project's wheel and the pinned dependencies' wheels, by this environment's pip
    (its index and cache; the image's root never reaches a network)."""
    out.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out)]
    pinned = [r for r in requirements if "==" in r]
    run([*pip, "--no-deps", *pinned], "wheels (dependencies)")
    # Only the image's Python needs these: pip resolves them and what they need.
    if unpinned := [r for r in requirements if "==" not in r]:
        run([*pip, *unpinned], "wheels (for the image's Python)")
    # Built from a copy of exactly the hashed sources: setuptools leaves a build/ tree in
    # the directory it builds, and would put a stale module from it into the wheel.
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for path in _source_files(root):
            (source / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / path.relative_to(root))
        run([*pip, "--no-deps", str(source)], "wheel (unifaas)")


def _install(root: Path, image_root: Path) -> None:
    scripts = image_root / "tmp" / "scripts"
    scripts.mkdir()
    shutil.copy(root / "scripts" / "vm-user.sh", scripts / "vm-user.sh")
    rootfs.in_chroot(
        image_root,
        f"""
        python3 -m venv {VENV}
        {VENV}/bin/pip install --quiet --no-index --no-deps /tmp/wheels/*.whl
        {VENV}/bin/pip check
        {VENV}/bin/pip uninstall --quiet --yes pip
        bash /tmp/scripts/vm-user.sh
        rm -rf /tmp/wheels /tmp/scripts
        """,
        "venv",
    )


def _bake_guest(image_root: Path, kernel: Path, floor: Path) -> None:
    guest = image_root / GUEST_DIR.lstrip("/")
    guest.mkdir(parents=True)
    for source, name in zip((kernel, floor), PREBUILT_FILES, strict=True):
        shutil.copyfile(source, guest / name)
    env = {"UNIFAAS_VM_PREBUILT_DIR": GUEST_DIR, "UNIFAAS_VM_CACHE_DIR": CACHE_DIR}
    rootfs.in_chroot(image_root, f"{VENV}/bin/unifaas image build", "guest image", env)


def _prune(docker: Docker, keep: str) -> None:
    """Remove this project's older images past the newest ``IMAGES_KEPT`` (each is ~330 MB
    and a checkout under work makes a new one per change)."""
    tags = [ref for _, ref in docker.images(KEY_LABEL) if ref != LATEST]
    older = [ref for ref in tags if ref != keep][IMAGES_KEPT - 1 :]
    docker.remove_images(older)


def check_tools() -> None:
    if os.geteuid() != 0:
        raise ContainerError("tools", "building the image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "chroot", "tar", "mount"):
        if shutil.which(tool) is None:
            raise ContainerError("tools", f"{tool} is not installed (scripts/dockerd.sh start)")
