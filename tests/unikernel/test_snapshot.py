"""Snapshot templates and their clones, on real QEMU guests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scheduler.pool.sandbox import MicroVMFactory
from tests.conftest import artifact
from tests.vms import VMTracker
from unikernel.accel import Accel
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.snapshot import (
    PREFIX,
    Template,
    make_template,
    make_version_template,
    sweep_stale,
    template_bytes,
)
from unikernel.vm import MicroVM
from wasm_runtime.guestos import TlbWarmer
from wasm_runtime.types import Invocation

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
async def template(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel
) -> AsyncIterator[Template]:
    made = await make_template(guest_image, vm_settings, accel)
    yield made
    made.remove()


async def test_clones_serve_with_their_own_clock_and_randomness(
    template: Template, vms: VMTracker
) -> None:
    await asyncio.sleep(1.5)  # the template's clock falls behind the real one
    before = time.time_ns()
    clones = await asyncio.gather(*(vms.restore(template, f"clone{i}") for i in range(2)))
    after = time.time_ns()
    for i, vm in enumerate(clones):
        assert vm.restored and vm.alive
        # The agent took the host's time, not the template's (1.5 s behind): its clock
        # reads within the restore's window, with 0.2 s for the guest's clock steps.
        assert vm.resumed is not None
        assert before - 2e8 <= vm.resumed.time_ns <= after + 2e8
        await vm.load("echo", artifact("echo"))
        result = await vm.invoke("echo", Invocation(stdin=f"clone {i}".encode()))
        assert result.stdout == f"clone {i}".encode()
    # Same RAM image, yet the kernel RNG was reseeded differently in each.
    samples = {vm.resumed.random_sample for vm in clones if vm.resumed is not None}
    assert len(samples) == 2


async def test_a_clone_grows_qemus_tlb_after_its_first_calls_only(
    template: Template, vms: VMTracker
) -> None:
    """guestos.TlbWarmer: a resumed agent wakes its helper after each of its first calls
    (each a switch of address space, so QEMU may resize its TLB), then no more."""
    vm = await vms.restore(template, "tlb")
    await vm.load("echo", artifact("echo"))
    rounds = TlbWarmer.ROUNDS
    for i in range(rounds + 3):
        result = await vm.invoke("echo", Invocation(stdin=f"call {i}".encode()))
        assert result.stdout == f"call {i}".encode()
    assert (await vm.agent.stats()).tlb_rounds == rounds


async def test_template_files_are_removed_and_stale_ones_swept(
    template: Template, tmp_path: Path
) -> None:
    assert template.memory_file.exists() and template.state_file.exists()
    dead = tmp_path / f"{PREFIX}999999999-x"
    mine = tmp_path / f"{PREFIX}{os.getpid()}-y"
    dead.mkdir()
    mine.mkdir()
    assert sweep_stale(tmp_path) == 1
    assert not dead.exists() and mine.exists()


async def test_a_broken_template_is_dropped_rebuilt_and_cleaned_up(
    guest_image: GuestImage, vm_settings: VMSettings, accel: Accel, vms: VMTracker
) -> None:
    factory = MicroVMFactory(guest_image, vm_settings, accel)

    async def boot() -> MicroVM:
        vm = await factory.boot()
        assert isinstance(vm, MicroVM)
        vms.track(vm)
        await vm.load("echo", artifact("echo"))
        assert (await vm.invoke("echo", Invocation(stdin=b"x"))).stdout == b"x"
        return vm

    try:
        assert (await boot()).restored
        first = factory._template
        assert first is not None
        first.state_file.write_bytes(b"not a snapshot")  # corrupted while the node runs
        assert not (await boot()).restored  # the clone failed: booted instead
        assert factory.restore_failures == 1 and not first.directory.exists()
        second = await factory.wait_template()  # rebuilt in the background
        assert second is not None and second is not first
        assert (await boot()).restored
        second.memory_file.unlink()  # its RAM file deleted
        assert not (await boot()).restored  # seen missing: no clone tried
        assert factory.restore_failures == 1 and factory.template_rebuilds == 2
        third = await factory.wait_template()
        assert third is not None and (await boot()).restored
    finally:
        await vms.stop_all()
        await factory.close()
    assert not third.directory.exists()


async def test_warm_up_leaves_nothing_loaded(template: Template, vms: VMTracker) -> None:
    vm = await vms.restore(template, "warm")
    await vm.warm_up()
    assert (await vm.stats()).functions == []
    await vm.load("echo", artifact("echo"))
    assert (await vm.invoke("echo", Invocation(stdin=b"after"))).stdout == b"after"


async def test_a_version_template_starts_clones_with_the_function_loaded(
    template: Template, vm_settings: VMSettings, vms: VMTracker
) -> None:
    async def prepare(vm: MicroVM) -> None:
        await vm.load("echo@1", artifact("echo"))
        await vm.warm_up()

    version = await make_version_template(template, vm_settings, "echo@1", prepare)
    try:
        assert version.loaded == "echo@1" and version.intact()
        assert version.directory != template.directory and template.intact()
        # Sparse: the copy holds about the pages the guest touched, not all its RAM.
        assert template_bytes(version) < vm_settings.guest_memory_mib * 1024 * 1024
        await asyncio.sleep(1.0)  # the template's clock falls behind
        clones = await asyncio.gather(*(vms.restore(version, f"v{i}") for i in range(2)))
        for i, vm in enumerate(clones):
            assert vm.preloaded == "echo@1"
            assert (await vm.stats()).functions == ["echo@1"]
            result = await vm.invoke("echo@1", Invocation(stdin=f"no load {i}".encode()))
            assert result.stdout == f"no load {i}".encode()
            assert vm.resumed is not None and abs(vm.resumed.time_ns - time.time_ns()) < 1e9
        samples = {vm.resumed.random_sample for vm in clones if vm.resumed is not None}
        assert len(samples) == 2
    finally:
        version.remove()
    assert not version.directory.exists() and template.intact()
