"""Integration tests against real QEMU microVMs running the real agent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from loadtests.bench.curves.sized import sized_module
from tests.conftest import artifact
from tests.vms import VMTracker, keep_evidence, running
from unikernel.accel import Accel, floor_boot
from unikernel.errors import VMGone, VMLaunchError
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.bundle import pack_files
from wasm_runtime.engine import precompile
from wasm_runtime.errors import ErrorCode, FunctionNotLoaded, InvalidModule, ProtocolError
from wasm_runtime.protocol import STAGE_CHUNK_BYTES
from wasm_runtime.types import MIB, Invocation, Limits, Outcome

pytestmark = pytest.mark.vm


async def test_hello_many_times(shared_vm: MicroVM) -> None:
    for _ in range(25):
        result = await shared_vm.invoke("hello", Invocation())
        assert result.outcome is Outcome.OK
        assert result.exit_code == 0
        assert result.stdout == b"Hello from unifaas!\n"


async def test_echo_large_body(shared_vm: MicroVM) -> None:
    body = os.urandom(512 * 1024)
    result = await shared_vm.invoke("echo", Invocation(stdin=body))
    assert result.raise_for_outcome().stdout == body


async def test_calls_in_flight_complete_correctly(shared_vm: MicroVM) -> None:
    bodies = [f"call-{i}".encode() * (i + 1) for i in range(12)]
    results = await asyncio.gather(*(shared_vm.invoke("echo", Invocation(stdin=b)) for b in bodies))
    assert [r.stdout for r in results] == bodies


async def test_infinite_loop_times_out_and_vm_keeps_serving(shared_vm: MicroVM) -> None:
    result = await shared_vm.invoke(
        "misbehave", Invocation(args=("loop",), limits=Limits(timeout_ms=1000))
    )
    assert result.outcome is Outcome.TIMEOUT
    assert 900 <= result.duration_ms < 10_000
    assert (await shared_vm.invoke("hello", Invocation())).ok


async def test_memory_bomb_is_oom_and_vm_keeps_serving(shared_vm: MicroVM) -> None:
    result = await shared_vm.invoke(
        "misbehave", Invocation(args=("oom",), limits=Limits(memory_bytes=16 * MIB))
    )
    assert result.outcome is Outcome.OUT_OF_MEMORY
    assert result.memory_bytes <= 16 * MIB
    assert (await shared_vm.invoke("hello", Invocation())).ok


async def test_trap_and_output_cap_and_exit_code(shared_vm: MicroVM) -> None:
    trap = await shared_vm.invoke("misbehave", Invocation(args=("trap",)))
    assert trap.outcome is Outcome.TRAP
    assert trap.message
    spam = await shared_vm.invoke(
        "misbehave", Invocation(args=("spam",), limits=Limits(stdout_max_bytes=64 * 1024))
    )
    assert spam.outcome is Outcome.OUTPUT_TOO_LARGE
    assert len(spam.stdout) <= 64 * 1024
    code = await shared_vm.invoke("misbehave", Invocation(args=("exit", "42")))
    assert code.outcome is Outcome.OK
    assert code.exit_code == 42


async def test_garbage_on_channel_gets_error_reply(shared_vm: MicroVM) -> None:
    await shared_vm.agent.send_raw(b"this is not a frame\x00\xff" * 10)
    err = await asyncio.wait_for(shared_vm.agent.unsolicited_errors.get(), 30)
    assert isinstance(err, ProtocolError)
    assert ErrorCode.BAD_FRAME.value in str(err)
    assert (await shared_vm.invoke("hello", Invocation())).ok


async def test_agent_errors_are_typed(shared_vm: MicroVM) -> None:
    with pytest.raises(FunctionNotLoaded):
        await shared_vm.invoke("nope", Invocation())
    with pytest.raises(InvalidModule):
        await shared_vm.load("bad", b"\x00asm garbage that is no artifact")
    stats = await shared_vm.stats()
    assert {"hello", "echo", "misbehave"} <= set(stats.functions)
    assert stats.agent_rss_kib > 0 and shared_vm.rss_kib() > 0


async def test_qmp_pause_resume(shared_vm: MicroVM) -> None:
    assert await shared_vm.status() == "running"
    await shared_vm.pause()
    assert await shared_vm.status() == "paused"
    await shared_vm.resume()
    assert await shared_vm.status() == "running"
    assert await shared_vm.ping() > 0


async def test_killing_qemu_fails_pending_calls_and_leaves_nothing(vms: VMTracker) -> None:
    vm = await vms.boot("victim")
    await vm.load("misbehave", artifact("misbehave"))
    pending = [
        asyncio.ensure_future(
            vm.invoke("misbehave", Invocation(args=("loop",), limits=Limits(timeout_ms=60_000)))
        )
        for _ in range(3)
    ]
    await asyncio.sleep(0.5)
    pid, run_dir = vm.pid, vm.process.run_dir
    os.kill(pid or 0, 9)
    for fut in pending:
        with pytest.raises(VMGone):
            await asyncio.wait_for(fut, 10)
    with pytest.raises(VMGone):
        await vm.invoke("misbehave", Invocation(args=("trap",)))
    await vm.stop()
    assert not running(pid)
    assert not run_dir.exists()


async def test_boot_failure_cleans_up(
    vm_settings: VMSettings, guest_image: GuestImage, tmp_path: object
) -> None:
    broken = GuestImage(
        kernel=guest_image.initrd,
        initrd=guest_image.initrd,
        floor_initrd=guest_image.floor_initrd,
        key="broken",
    )
    settings = vm_settings.model_copy(update={"boot_timeout_s": 20.0})
    before = set(os.listdir("/tmp"))
    with pytest.raises(VMLaunchError) as info:
        await MicroVM.boot(broken, settings, "tcg", name="broken")
    assert info.value.argv[0] == settings.qemu_binary
    leftovers = {d for d in set(os.listdir("/tmp")) - before if d.startswith("unifaas-broken")}
    assert leftovers == set()


async def test_floor_boot(vm_settings: VMSettings, guest_image: GuestImage, accel: Accel) -> None:
    seconds = await floor_boot(guest_image, vm_settings, accel, 30)
    assert 0 < seconds < 30


async def test_files_bundle_writes_never_leak(shared_vm: MicroVM) -> None:
    bundle = pack_files({"data.txt": b"bundled data\n"})
    await shared_vm.load("files", artifact("files"), files=bundle)
    for _ in range(2):
        result = await shared_vm.invoke("files", Invocation())
        assert result.raise_for_outcome().stdout == b"bundled data\nscratch.txt existed: no\n"


async def test_a_100_mib_module_is_staged_and_mapped_not_copied(vms: VMTracker) -> None:
    """Its artifact goes to the guest in chunks, into one file that wasmtime maps and
    builds linear memory from copy-on-write, so the guest spends about its size once
    (measured: 1.2x). Whole in one frame it was held three times while loading, and a
    100 MiB module took a 512 MiB guest down. On a VM of its own: what another test left
    loaded, or frees meanwhile, would move the measure."""
    vm = await vms.boot("large")
    wasm = sized_module(100 * MIB)
    art = await asyncio.to_thread(precompile, wasm)
    assert len(art) > 10 * STAGE_CHUNK_BYTES
    before = (await vm.stats()).mem_available_kib * 1024
    await vm.load("large", art)
    limits = Limits(timeout_ms=30_000, memory_bytes=len(wasm) + 64 * MIB)
    result = await vm.invoke("large", Invocation(stdin=b"hi", limits=limits))
    assert result.raise_for_outcome().stdout == b"hi"
    spent = before - (await vm.stats()).mem_available_kib * 1024
    assert spent < 1.5 * len(art), (spent, len(art))
    again = await vm.invoke("large", Invocation(stdin=b"again", limits=limits))
    assert again.raise_for_outcome().stdout == b"again"


# Connects to the QMP and agent sockets named on its command line, then dies
# the way QEMU does when KVM rejects the CPU model (an assertion, SIGABRT).
FAKE_QEMU = """\
import os, socket, sys
paths = [a.split("path=")[1].split(",")[0] for a in sys.argv if "path=" in a]
held = []
for path in paths:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
sys.stderr.write("qemu: kvm_buf_set_msrs: Assertion failed\\n")
sys.stderr.flush()
os.abort()
"""


@pytest.fixture
def dying_qemu(tmp_path: Path, vm_settings: VMSettings) -> VMSettings:
    fake = tmp_path / "qemu-dies-after-connecting"
    fake.write_text(f"#!{sys.executable}\n{FAKE_QEMU}")
    fake.chmod(0o755)
    return vm_settings.model_copy(update={"qemu_binary": str(fake), "boot_timeout_s": 20.0})


async def test_qemu_dying_after_connecting_is_a_launch_error(
    dying_qemu: VMSettings, guest_image: GuestImage
) -> None:
    # The KVM probe boots the floor this way: a QEMU that connects, then dies,
    # must read as "this accelerator does not work", never as a crash.
    with pytest.raises(VMLaunchError, match="Assertion failed"):
        await floor_boot(guest_image, dying_qemu, "kvm", 20)
    with pytest.raises(VMLaunchError, match="Assertion failed"):
        await MicroVM.boot(guest_image, dying_qemu, "kvm", name="dies")


async def test_evidence_of_a_vm_is_its_console_and_qemu_stderr(
    shared_vm: MicroVM, tmp_path: Path
) -> None:
    kept = keep_evidence(shared_vm, tmp_path)
    assert kept.parent == tmp_path
    assert (kept / "console.log").read_bytes()  # the quiet kernel still prints a line or two
    assert (kept / "qemu.stderr").is_file()
