"""Pure QEMU command-line builder: a VMSpec in, an argv list out, no I/O."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

AGENT_CHARDEV = "agent"
AGENT_PORT_NAME = "unifaas.agent"
# Port 1 of the first virtio-serial bus is /dev/vport0p1 in the guest
# (port 0 is reserved for a console); the agent opens exactly that.
AGENT_PORT_NR = 1
QMP_CHARDEV = "qmp"
RAM_BACKEND = "ram0"

# Kernel arguments and why:
#  - console=ttyS0 + quiet: boot messages stay out of the way, agent errors
#    still reach the console log;
#  - panic=-1 with QEMU's -no-reboot: a dead PID 1 ends QEMU;
#  - rootfstype=ramfs: tmpfs root caps at half of RAM and fails to unpack;
#  - random.trust_cpu=on (with -cpu max giving RDRAND): Python blocks at
#    start until the RNG is seeded otherwise (0.6-2.6 s measured);
#  - cryptomgr.notests: skips self-tests of crypto the guest never uses;
#  - PYTHONHOME / PYTHONHASHSEED: unknown key=value arguments become init's
#    environment; the hash seed avoids waiting for entropy at all.
BASE_KERNEL_ARGS = (
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "rootfstype=ramfs",
    "random.trust_cpu=on",
    "cryptomgr.notests",
    # The boot-time check that the timer reaches the IO-APIC waits a few ticks by
    # the TSC; when the host is busy the vCPU misses them and the kernel panics
    # ("IO-APIC + timer doesn't work", seen under TCG with tests running beside it).
    "no_timer_check",
    "PYTHONHOME=/usr",
    "PYTHONHASHSEED=0",
)


@dataclasses.dataclass(frozen=True)
class VMSpec:
    kernel: Path
    initrd: Path
    agent_socket: Path  # the host listens here; QEMU connects as a client
    qmp_socket: Path  # likewise, for QMP
    console_log: Path
    accel: Literal["kvm", "tcg"] = "tcg"
    machine: Literal["microvm", "q35"] = "microvm"
    memory_mib: int = 512
    tcg_tb_size_mib: int = 64
    qemu_binary: str = "qemu-system-x86_64"
    extra_kernel_args: str = ""
    # The host's TSC frequency under TCG (unikernel.tsc says why); "" under KVM.
    tsc_kernel_args: str = ""
    # Guest RAM in this file instead of anonymous memory: shared by a snapshot
    # template (its RAM becomes the file), mapped copy-on-write by its clones.
    memory_file: Path | None = None
    memory_shared: bool = False
    # Start paused, waiting for the snapshot's device state (QMP migrate-incoming).
    incoming: bool = False
    # -sandbox / -runas / -chroot, from unikernel.confine.Confinement.qemu_args.
    confinement_args: tuple[str, ...] = ()


# No `nolapic_timer` under TCG, although it would save the ~0.25 s the kernel
# spends calibrating the local APIC timer (TCG has no TSC-deadline timer): the PIT
# then becomes the clock event device and ticks at HZ even when idle. Only boots
# pay the calibration; clones restore past it.


def kernel_cmdline(spec: VMSpec) -> str:
    args = list(BASE_KERNEL_ARGS)
    if spec.tsc_kernel_args:
        args.append(spec.tsc_kernel_args)
    if spec.extra_kernel_args:
        args.append(spec.extra_kernel_args)
    return " ".join(args)


def build_argv(spec: VMSpec) -> list[str]:
    if spec.accel == "tcg":
        accel = f"tcg,tb-size={spec.tcg_tb_size_mib}"
        # TCG's "max" model offers RDRAND and SSE4.2, both of which the guest needs.
        cpu = "max"
    else:
        accel, cpu = "kvm", "host"
    memory: list[str] = []
    backend = ""
    if spec.memory_file is not None:
        share = "on" if spec.memory_shared else "off"
        memory = [
            "-object",
            f"memory-backend-file,id={RAM_BACKEND},size={spec.memory_mib}M,"
            f"mem-path={spec.memory_file},share={share}",
        ]
        backend = f",memory-backend={RAM_BACKEND}"
    if spec.machine == "microvm":
        # No ACPI: the tiny kernel has none and boots faster without it;
        # QEMU passes the virtio-mmio devices on the kernel command line.
        machine = ["-M", f"microvm,acpi=off{backend}"]
        serial_bus = "virtio-serial-device"
        balloon = "virtio-balloon-device"
    else:
        machine = ["-M", f"q35{backend}", "-bios", "qboot.rom"]
        serial_bus = "virtio-serial-pci"
        balloon = "virtio-balloon-pci"
    return [
        spec.qemu_binary,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        *memory,
        *machine,
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        str(spec.memory_mib),
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        kernel_cmdline(spec),
        "-serial",
        f"file:{spec.console_log}",
        "-chardev",
        f"socket,id={QMP_CHARDEV},path={spec.qmp_socket}",
        "-mon",
        f"chardev={QMP_CHARDEV},mode=control",
        "-device",
        serial_bus,
        "-chardev",
        f"socket,id={AGENT_CHARDEV},path={spec.agent_socket}",
        "-device",
        f"virtserialport,chardev={AGENT_CHARDEV},name={AGENT_PORT_NAME},nr={AGENT_PORT_NR}",
        # Never inflated: only there for free page reporting, which hands the
        # guest's freed memory (the initrd copy after unpacking, memory of
        # finished calls) back to the host a few seconds after it is freed.
        "-device",
        f"{balloon},free-page-reporting=on",
        *(["-incoming", "defer"] if spec.incoming else []),
        *spec.confinement_args,
    ]
