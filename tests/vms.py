"""The one way tests start real microVMs: tracked, always stopped, evidence kept on failure.

A test asks for the ``vms`` fixture and boots or restores through it (or hands
it a VM it made otherwise with :meth:`VMTracker.track`). At teardown every VM
it holds is stopped and its QEMU checked gone; when the test failed, each VM's
guest console and QEMU stderr are first copied to ``artifacts/<test>/<vm>/``
(a VM's run directory goes when it stops, so this must come first).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from unikernel.accel import Accel
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.snapshot import Template
from unikernel.vm import MicroVM

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
EVIDENCE = ("console.log", "qemu.stderr")


def artifacts_dir(nodeid: str) -> Path:
    return ARTIFACTS / re.sub(r"[^\w.-]+", "_", nodeid).strip("_")


def keep_evidence(vm: MicroVM, dest: Path) -> Path:
    """Copy what the VM left in its run directory (console, QEMU stderr) under ``dest``."""
    target = dest / f"{vm.process.run_dir.name}-pid{vm.pid}"
    target.mkdir(parents=True, exist_ok=True)
    for name in EVIDENCE:
        source = vm.process.run_dir / name
        if source.is_file():
            shutil.copyfile(source, target / name)
    return target


class VMTracker:
    def __init__(self, settings: VMSettings, image: GuestImage, accel: Accel) -> None:
        self.settings = settings
        self.image = image
        self.accel = accel
        self.vms: list[MicroVM] = []

    def track(self, vm: MicroVM) -> MicroVM:
        self.vms.append(vm)
        return vm

    async def boot(self, name: str = "vm") -> MicroVM:
        return self.track(await MicroVM.boot(self.image, self.settings, self.accel, name=name))

    async def restore(self, template: Template, name: str = "clone") -> MicroVM:
        return self.track(await MicroVM.restore(template, self.settings, name=name))

    def keep_evidence(self, dest: Path) -> list[Path]:
        return [keep_evidence(vm, dest) for vm in self.vms]

    async def stop_all(self) -> None:
        for vm in self.vms:
            await vm.stop()
        alive = [vm.pid for vm in self.vms if vm.pid is not None and running(vm.pid)]
        self.vms.clear()
        assert alive == [], f"QEMU still running after stop: {alive}"


def running(pid: int | None) -> bool:
    """The process exists and is not a zombie (a reaped child's pid is gone)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
