"""Choose the accelerator: KVM when a guest really boots under it, else TCG; cached per host.

``/dev/kvm`` being present is not enough: on nested hosts a KVM guest hangs
right after the firmware. So the probe boots the do-nothing floor guest under
KVM with a short deadline and caches the verdict, keyed by host kernel and
QEMU binary, in the cache dir.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Literal

from unikernel.floor import FLOOR_MAGIC
from unikernel.image import GuestImage
from unikernel.process import VMProcess
from unikernel.qmp import QmpControl
from unikernel.settings import VMSettings
from wasm_runtime.errors import UnikernelError

log = logging.getLogger(__name__)

Accel = Literal["kvm", "tcg"]


async def floor_boot(
    image: GuestImage, settings: VMSettings, accel: Accel, timeout_s: float
) -> float:
    """Boot the do-nothing init and return seconds from exec to its marker on the agent port.

    Raises VMLaunchError when QEMU exits first or the deadline passes; the
    process is always gone when this returns.
    """
    overrides: dict[str, object] = {
        "accel": accel,
        "machine": settings.machine,
        "memory_mib": settings.guest_memory_mib,
        "tcg_tb_size_mib": settings.tcg_tb_size_mib,
        "qemu_binary": settings.qemu_binary,
    }
    qmp = QmpControl("floor")
    async with VMProcess(
        image.kernel, image.floor_initrd, overrides, settings.run_dir, "floor"
    ) as proc:
        try:
            await qmp.listen(proc.spec.qmp_socket)
            await proc.listen()
            await proc.spawn()
            qmp.start_accept()
            reader, _ = await proc.accept_agent()
            read = asyncio.ensure_future(reader.readexactly(len(FLOOR_MAGIC)))
            data = await proc.until_exit_or(read, timeout_s, "the floor init's marker")
            elapsed = time.perf_counter() - proc.started_at
            if data != FLOOR_MAGIC:
                raise proc.launch_error(f"floor init sent {data!r}")
            return elapsed
        finally:
            await qmp.close()


def _cache_file(settings: VMSettings) -> Path:
    return settings.cache_dir / "accel.json"


def _host_key(settings: VMSettings) -> str:
    qemu = shutil.which(settings.qemu_binary) or settings.qemu_binary
    try:
        mtime = os.stat(qemu).st_mtime_ns
    except OSError:
        mtime = 0
    return f"{platform.release()}|{qemu}|{mtime}"


async def resolve_accel(settings: VMSettings, image: GuestImage) -> Accel:
    """The accelerator to use: the forced one, the cached verdict, or a fresh probe."""
    if settings.accel != "auto":
        return settings.accel
    cache = _cache_file(settings)
    key = _host_key(settings)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("host") == key and cached.get("accel") in ("kvm", "tcg"):
            accel: Accel = cached["accel"]
            return accel
    except (OSError, ValueError):
        pass
    accel = await probe_kvm(settings, image)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"host": key, "accel": accel, "probed_at": time.time()}))
    return accel


async def probe_kvm(settings: VMSettings, image: GuestImage) -> Accel:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log.info("no usable /dev/kvm: using TCG")
        return "tcg"
    try:
        seconds = await floor_boot(image, settings, "kvm", settings.kvm_probe_timeout_s)
    except UnikernelError as err:
        log.warning(
            "KVM present but a guest did not boot under it (%s): using TCG",
            str(err).splitlines()[0],
        )
        return "tcg"
    log.info("KVM works (floor boot %.2fs)", seconds)
    return "kvm"
