"""Snapshot templates: boot one guest, save it, start clones of it in ~0.1 s instead of a boot.

The template's guest RAM lives in a file on tmpfs, shared with QEMU, so its
snapshot holds only the device state (~50 KB, written in ~20 ms; migration
capability ``x-ignore-shared``). A clone maps the same file copy-on-write
(``share=off``), loads that state (``-incoming defer``) and continues where
the template was paused: an agent that said hello and waits for requests.
Measured here under TCG: boot-to-ready 3.7 s, clone-to-ready 0.10-0.11 s.

The template is stopped once saved (it would write to RAM its clones map).
Its files go when the template is removed, and a process that died without
removing its own is swept by the next one (directories carry the owner's pid).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from unikernel.accel import Accel
from unikernel.children import pid_alive
from unikernel.confine import Confinement
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.replies import Hello

PREFIX = "unifaas-tpl-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


@dataclasses.dataclass(frozen=True)
class Template:
    image: GuestImage
    accel: Accel
    directory: Path
    memory_file: Path
    state_file: Path
    hello: Hello
    # The function its agent holds loaded (a version template), or None (generic).
    loaded: str | None = None

    def intact(self) -> bool:
        """Its RAM and state files are still there (a clone of it can start)."""
        return self.memory_file.is_file() and self.state_file.is_file()

    def remove(self) -> None:
        """Delete its files; running clones keep their mapping of the RAM file."""
        shutil.rmtree(self.directory, ignore_errors=True)


def snapshot_dir(settings: VMSettings) -> Path:
    if settings.snapshot_dir is not None:
        return settings.snapshot_dir
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def room_for_template(settings: VMSettings) -> bool:
    """Whether the template's RAM file fits: guest RAM on a full tmpfs is a SIGBUS in QEMU."""
    stat = os.statvfs(snapshot_dir(settings))
    return stat.f_bavail * stat.f_frsize >= settings.guest_memory_mib * 1024 * 1024


def sweep_stale(parent: Path) -> int:
    """Remove template directories whose owning process is gone; returns how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            match = _OWNED.match(entry.name)
            if match is None or pid_alive(int(match.group(1))):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def template_bytes(template: Template) -> int:
    """Space its RAM file really takes (tmpfs allocates only the pages the guest touched)."""
    try:
        return os.stat(template.memory_file).st_blocks * 512
    except OSError:
        return 0


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a file's data regions only: a guest RAM file is mostly holes."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        dst.truncate(size)
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            while start < end:
                done = os.copy_file_range(src.fileno(), dst.fileno(), end - start, start, start)
                if done == 0:
                    raise OSError(errno.EIO, f"short copy of {source}")
                start += done
            offset = end


def _new_directory(settings: VMSettings) -> Path:
    parent = snapshot_dir(settings)
    sweep_stale(parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))


async def make_template(
    image: GuestImage, settings: VMSettings, accel: Accel, confinement: Confinement | None = None
) -> Template:
    """Boot a guest with its RAM in a shared file, snapshot it, stop it."""
    directory = _new_directory(settings)
    memory_file, state_file = directory / "ram", directory / "state"
    try:
        vm = await MicroVM.boot(
            image,
            settings,
            accel,
            name="template",
            memory_file=memory_file,
            confinement=confinement,
        )
        try:
            await vm.qmp.save_snapshot(state_file)
            hello = vm.agent.hello
        finally:
            await vm.stop()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return Template(image, accel, directory, memory_file, state_file, hello)


async def make_version_template(
    base: Template,
    settings: VMSettings,
    loaded: str,
    prepare: Callable[[MicroVM], Awaitable[None]],
    confinement: Confinement | None = None,
) -> Template:
    """A template of ``base`` after ``prepare`` (which loads ``loaded``) ran on a clone of it.

    The clone's RAM is a copy of ``base``'s, shared, so saving it again holds
    only its device state, like ``base``; the copy is sparse (~the pages the
    guest touched). Clones of the result start with the function loaded and
    still take the real time and fresh entropy on resuming.
    """
    directory = _new_directory(settings)
    memory_file, state_file = directory / "ram", directory / "state"
    try:
        await asyncio.to_thread(copy_sparse, base.memory_file, memory_file)
        vm = await MicroVM.restore(
            base, settings, name="template", confinement=confinement, memory_copy=memory_file
        )
        try:
            vm.yield_cpu()  # off every call's path: calls' VMs go first
            await prepare(vm)
            await vm.qmp.save_snapshot(state_file)
        finally:
            await vm.stop()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return dataclasses.replace(
        base, directory=directory, memory_file=memory_file, state_file=state_file, loaded=loaded
    )
