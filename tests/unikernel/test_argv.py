"""Golden tests of the pure QEMU argv builder."""

from __future__ import annotations

from pathlib import Path

from unikernel.argv import VMSpec, build_argv


def spec(**kw: object) -> VMSpec:
    return VMSpec(
        kernel=Path("/img/bzImage"),
        initrd=Path("/img/initramfs.cpio"),
        agent_socket=Path("/run/vm/agent.sock"),
        qmp_socket=Path("/run/vm/qmp.sock"),
        console_log=Path("/run/vm/console.log"),
        **kw,  # type: ignore[arg-type]
    )


def test_microvm_tcg_golden() -> None:
    assert build_argv(spec()) == [
        "qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg,tb-size=64",
        "-cpu",
        "max",
        "-m",
        "512",
        "-kernel",
        "/img/bzImage",
        "-initrd",
        "/img/initramfs.cpio",
        "-append",
        "console=ttyS0 quiet panic=-1 rootfstype=ramfs random.trust_cpu=on cryptomgr.notests "
        "PYTHONHOME=/usr PYTHONHASHSEED=0 nolapic_timer",
        "-serial",
        "file:/run/vm/console.log",
        "-chardev",
        "socket,id=qmp,path=/run/vm/qmp.sock",
        "-mon",
        "chardev=qmp,mode=control",
        "-device",
        "virtio-serial-device",
        "-chardev",
        "socket,id=agent,path=/run/vm/agent.sock",
        "-device",
        "virtserialport,chardev=agent,name=unifaas.agent,nr=1",
        "-device",
        "virtio-balloon-device,free-page-reporting=on",
    ]


def test_kvm_q35_variant() -> None:
    argv = build_argv(
        spec(
            accel="kvm",
            machine="q35",
            memory_mib=256,
            tcg_tb_size_mib=8,
            extra_kernel_args="loglevel=7",
            qemu_binary="/opt/qemu",
        )
    )
    assert argv[0] == "/opt/qemu"
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"
    assert argv[argv.index("-M") + 1 : argv.index("-M") + 4] == ["q35", "-bios", "qboot.rom"]
    assert "virtio-serial-pci" in argv
    assert "virtio-balloon-pci,free-page-reporting=on" in argv
    assert argv[argv.index("-m") + 1] == "256"
    assert argv[argv.index("-append") + 1].endswith("PYTHONHASHSEED=0 loglevel=7")
