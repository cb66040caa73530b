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
        "no_timer_check PYTHONHOME=/usr PYTHONHASHSEED=0",
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


def test_snapshot_template_and_clone_memory() -> None:
    template = build_argv(spec(memory_file=Path("/dev/shm/t/ram"), memory_shared=True))
    assert template[template.index("-object") + 1] == (
        "memory-backend-file,id=ram0,size=512M,mem-path=/dev/shm/t/ram,share=on"
    )
    assert template[template.index("-M") + 1] == "microvm,acpi=off,memory-backend=ram0"
    assert "-incoming" not in template

    clone = build_argv(spec(memory_file=Path("/dev/shm/t/ram"), incoming=True))
    assert clone[clone.index("-object") + 1].endswith("share=off")
    assert clone[-2:] == ["-incoming", "defer"]
    # Everything else is the template's: a clone's machine must match it exactly.
    rest = [a for a in clone if a not in ("-incoming", "defer")]
    assert [a.replace("share=off", "share=on") for a in rest] == template

    q35 = build_argv(spec(machine="q35", memory_file=Path("/r"), memory_shared=True))
    assert q35[q35.index("-M") + 1] == "q35,memory-backend=ram0"
