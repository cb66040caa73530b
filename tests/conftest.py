"""Shared fixtures: example modules, and (for tests marked ``vm``) the guest image and booted VMs.

Booted VMs are expensive under TCG (~2 s each), so one VM is shared by the
whole session; tests that must break a VM boot their own through ``vms``
(tests/vms.py). Every fixture that starts QEMU stops it on the way out,
failures included, and a failed test keeps the console and QEMU stderr of the
VMs it used under ``artifacts/<test>/``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from functions import c_example, wat_module
from scheduler.state.redis_server import EmbeddedRedis, connect
from tests.vms import VMTracker, artifacts_dir, keep_evidence
from unikernel import image as images
from unikernel.accel import Accel, resolve_accel
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.vm import MicroVM
from wasm_runtime.engine import precompile


def wasm(name: str) -> bytes:
    """The example function ``functions/<name>/<name>.wat`` compiled to wasm."""
    return wat_module(name)


def c_module(name: str) -> bytes:
    """A C example (``functions/<name>/*.c``) or test fixture (``tests/fixtures/<name>.c``)
    built for wasm32-wasi, with the SDK header, as ``make functions`` builds them."""
    fixture = Path(__file__).parent / "fixtures" / f"{name}.c"
    return c_example(name, (fixture,) if fixture.exists() else ())


@functools.cache
def artifact(name: str) -> bytes:
    return precompile(wasm(name))


# -- Redis: one embedded redis-server for the session; each test gets an empty DB.


@pytest.fixture(scope="session")
async def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedRedis]:
    async with EmbeddedRedis(tmp_path_factory.mktemp("state")) as server:
        yield server


@pytest.fixture(scope="session")
async def redis_client(embedded_redis: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = await connect(embedded_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis(redis_client: aioredis.Redis) -> aioredis.Redis:
    """The shared client, its database flushed so the test sees nothing of the others."""
    await redis_client.flushdb()
    return redis_client


@pytest.fixture(scope="session")
def vm_settings() -> VMSettings:
    return VMSettings()


@pytest.fixture(scope="session")
def guest_image(vm_settings: VMSettings) -> GuestImage:
    return images.guest_image(vm_settings)


@pytest.fixture(scope="session")
async def accel(vm_settings: VMSettings, guest_image: GuestImage) -> Accel:
    return await resolve_accel(vm_settings, guest_image)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test keeps the evidence of the VMs it used (before teardown stops them)."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        dest = artifacts_dir(item.nodeid)
        for value in funcargs.values():
            if isinstance(value, VMTracker):
                value.keep_evidence(dest)
            elif isinstance(value, MicroVM):
                keep_evidence(value, dest)
    return report


@pytest.fixture
async def vms(
    vm_settings: VMSettings, guest_image: GuestImage, accel: Accel
) -> AsyncIterator[VMTracker]:
    """Start VMs through this: every one is stopped at teardown, whatever happened."""
    tracker = VMTracker(vm_settings, guest_image, accel)
    try:
        yield tracker
    finally:
        await tracker.stop_all()


@pytest.fixture(scope="session")
async def shared_vm(
    vm_settings: VMSettings, guest_image: GuestImage, accel: Accel
) -> AsyncIterator[MicroVM]:
    vm = await MicroVM.boot(guest_image, vm_settings, accel, name="shared")
    try:
        for name in ("hello", "echo", "misbehave"):
            await vm.load(name, artifact(name))
        yield vm
    finally:
        await vm.stop()
