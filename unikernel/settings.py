"""Typed settings of the unikernel layer (env prefix ``UNIFAAS_VM_``), built once, passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "unifaas"


class VMSettings(BaseSettings):
    """How guest images are built and microVMs are launched.

    Every field can be set from the environment, e.g. ``UNIFAAS_VM_ACCEL=tcg``.
    """

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_VM_", frozen=True)

    # "auto" probes KVM once (booting the do-nothing guest with a short
    # deadline) and caches the answer; "kvm"/"tcg" force one.
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    qemu_binary: str = "qemu-system-x86_64"
    # microvm boots fastest here (see the closing note of the sandbox issue);
    # q35 is kept for hosts whose QEMU lacks microvm.
    machine: Literal["microvm", "q35"] = "microvm"
    # Guest RAM. The ramfs root holds the ~40 MB image, the agent ~20 MB;
    # the rest is for function linear memory (per-call cap: wasm_runtime Limits).
    # Guest RAM. Free page reporting (virtio-balloon) hands what the guest does
    # not use back to the host, so RAM the guest never touches costs nothing:
    # measured settled idle RSS 198 MiB at 192 and 202 MiB at 512, same boot.
    # The scheduler runs no more calls per VM than their memory caps fit in
    # this minus ~96 MiB of system (image, kernel, agent): 512 gives the
    # default 4 calls x 64 MiB. Below ~160 nothing is ever reported.
    guest_memory_mib: int = Field(default=512, ge=128)
    # Bound on QEMU's TCG translation cache (QEMU's own default is far larger).
    # Measured, settled idle RSS / boot-to-ready: 64 -> 198 MiB / 1.75 s,
    # 32 -> 191 MiB / 1.86 s (boot retranslates more), 16 -> a further -15 MiB
    # but a 2.5x slower first call. Boot time is cold-start time, so 64.
    # Ignored under KVM.
    tcg_tb_size_mib: int = Field(default=64, ge=8)
    # Where images, the kernel and the KVM probe result are cached.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    # A directory holding a kernel (vmlinux) and floor initramfs (floor.cpio) built
    # elsewhere, used instead of building them: what the container image ships, so a
    # node needs neither the kernel's source nor a compiler (unifaas container build).
    prebuilt_dir: Path | None = None
    # Parent of per-VM run directories (sockets, console log); None = system temp.
    run_dir: Path | None = None
    # Deadline from exec to the agent's hello. TCG boots in ~2 s; leave room
    # for a loaded machine booting several at once.
    boot_timeout_s: float = 60.0
    # How long a KVM probe boot may take before KVM is declared broken.
    kvm_probe_timeout_s: float = 10.0
    # Extra time the host grants a call beyond its own wall-clock limit before
    # it declares the VM hung and kills it (the call then runs again on another
    # VM). Measured on 2 cores under TCG with both saturated by other VMs' calls:
    # a call stopped by its timeout returned 110 ms late at p50, 256 ms at worst
    # (136 calls); 5 s is 20 times that.
    call_grace_s: float = 5.0
    extra_kernel_args: str = ""
    # Start VMs as clones of a booted, snapshotted template (~0.1 s) instead
    # of booting each (seconds under TCG); see unikernel/snapshot.py.
    snapshots: bool = True
    # Where template RAM files live; None = /dev/shm (tmpfs), else the temp dir.
    snapshot_dir: Path | None = None
    # Per-version templates (scheduler/pool/templates.py): after a version's first
    # load, a template with it loaded, so its later cold starts skip the load.
    # At most this many, and this much space for their RAM files; the least
    # recently used go first. 0 turns them off.
    version_templates: int = Field(default=16, ge=0)
    version_template_space_mib: int = Field(default=4096, ge=0)

    # Confinement of each QEMU (unikernel/confine.py). Each is on unless the
    # host cannot do it; the node then says why and /v1/status shows it.
    seccomp: bool = True
    # The unprivileged user QEMU drops to (scripts/bootstrap.sh creates it);
    # "" = stay the host's user.
    vm_user: str = "unifaas-vm"
    # Each VM under ids of its own, from vm_user's range in /etc/subuid and /etc/subgid.
    user_per_vm: bool = True
    chroot: bool = True
    cgroups: bool = True
    # cgroup v2 cpu.weight of each VM (100 = an equal share; v1 shares scaled).
    vm_cpu_weight: int = Field(default=100, ge=1, le=10000)
    # QEMU under TCG runs ~6 threads (main, vCPU, RCU, I/O workers); spawn
    # is denied by seccomp, so this bounds threads alone.
    vm_pids_max: int = Field(default=64, ge=8)
