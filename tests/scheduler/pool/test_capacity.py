"""Admission by measured memory: the estimate, the room it leaves, and a pool that grows
only while a (fake) host's available memory holds another VM and stops idle VMs when it
runs short."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.model import StartKind
from scheduler.pool import placement
from scheduler.pool.capacity import (
    MIN_VM_MIB,
    UNMEASURED_VM_MIB,
    VM_MARGIN,
    HostMemory,
    available_mib,
)
from scheduler.pool.vmrecord import VMRecord
from tests.scheduler.pool.test_pool import FakeFactory, PoolMaker, call, fv, load_ok
from tests.virtual_time import virtual_time

RESERVE = 1024
VM_PRIVATE_MIB = 40  # what each fake VM holds on the fake host


def meminfo(available: int) -> str:
    return f"MemTotal: {available * 4096} kB\nMemFree: 1 kB\nMemAvailable: {available * 1024} kB\n"


class FakeHost:
    """/proc/meminfo of a host whose available memory falls by each live fake VM."""

    def __init__(self, factory: FakeFactory, spare_mib: int) -> None:
        self.factory = factory
        self.spare_mib = spare_mib  # above the reserve, with no VM running
        self.taken_mib = 0  # by something else on the host

    def available(self) -> int:
        vms = len(self.factory.live()) * VM_PRIVATE_MIB
        return RESERVE + self.spare_mib - vms - self.taken_mib

    def __call__(self) -> str:
        return meminfo(self.available())


def test_available_is_read_from_meminfo() -> None:
    assert available_mib(meminfo(5000)) == 5000
    with pytest.raises(ValueError, match="MemAvailable"):
        available_mib("MemTotal: 1 kB\n")


def test_room_before_and_after_measuring_vms() -> None:
    free = [RESERVE + 1000]
    memory = HostMemory(ceiling_mib=624, reserve_mib=RESERVE, read=lambda: meminfo(free[0]))
    assert memory.vm_mib == UNMEASURED_VM_MIB
    assert memory.room(booting=0) == 1000 // UNMEASURED_VM_MIB
    assert memory.room(booting=2) == 1000 // UNMEASURED_VM_MIB - 2
    memory.observe([30 * 1024, 40 * 1024, 50 * 1024, 0])  # a VM that is gone reads 0
    assert memory.vm_mib == 40 * VM_MARGIN
    assert memory.room(booting=0) == int(1000 // (40 * VM_MARGIN))
    memory.observe([1024])  # an idle clone never counts as less than the floor
    assert memory.vm_mib == MIN_VM_MIB
    memory.observe([4096 * 1024])  # nor more than its cgroup ceiling
    assert memory.vm_mib == 624
    memory.observe([])  # nothing measured: the estimate stays
    assert memory.vm_mib == 624
    free[0] = RESERVE - 10
    assert memory.room(booting=0) == 0
    assert memory.shortfall_vms() == 1
    memory.observe([40 * 1024])
    free[0] = RESERVE - 200
    assert memory.shortfall_vms() == 4  # 200 MiB short at 60 MiB a VM
    status = memory.status([])
    assert (status.available_mib, status.reserve_mib, status.room) == (RESERVE - 200, RESERVE, 0)


@pytest.fixture
def pools() -> PoolMaker:
    factory = FakeFactory()
    factory.vm_ceiling_mib = 624
    return PoolMaker(factory)  # closes its pools (virtual_teardown)


@pytest.fixture
def host(pools: PoolMaker) -> FakeHost:
    return FakeHost(pools.factory, spare_mib=1000)


@virtual_time
async def test_the_pool_grows_while_memory_holds_another_vm(
    pools: PoolMaker, host: FakeHost
) -> None:
    factory = pools.factory
    factory.boot_delay_s = 0.01
    pool = pools(meminfo=host, max_vms=100)
    # Before any VM is measured, a new one is taken to cost UNMEASURED_VM_MIB.
    for i in range(3):
        await pool.invoke(fv(f"f{i}"), load_ok, call())
    pool.reclaim()  # measures the live VMs: 40 MiB each, so 60 with the margin
    assert pool.status().memory is not None
    assert pool.status().memory.vm_mib == VM_PRIVATE_MIB * VM_MARGIN
    # A VM starts while what is available above the reserve holds 60 MiB more:
    # 1000 - 40 n >= 60, so 23 VMs, then a 24th; later functions evict idle ones.
    for i in range(3, 40):
        await pool.invoke(fv(f"f{i}"), load_ok, call())
    assert factory.max_live == 24
    assert pool.status().vms == 24 and pool.status().evictions == 40 - 24
    assert host.available() >= RESERVE


@virtual_time
async def test_calls_queue_rather_than_overrun_memory(pools: PoolMaker, host: FakeHost) -> None:
    host.spare_mib = 100  # less than one VM at the unmeasured 160 MiB
    pool = pools(meminfo=host, max_vms=100, queue_timeout_s=0.5)
    with pytest.raises(Exception, match="within"):
        await pool.invoke(fv("a"), load_ok, call())
    assert pool.status().vms == 0
    host.spare_mib = 200  # someone freed memory: now one fits
    ran = await pool.invoke(fv("a"), load_ok, call())
    assert ran.start is StartKind.COLD and pool.status().vms == 1


@virtual_time
async def test_idle_vms_stop_under_memory_pressure(pools: PoolMaker, host: FakeHost) -> None:
    pool = pools(meminfo=host, max_vms=100, idle_target=1)
    await pool.start()
    keep = fv("keep", min_warm=1, keep_alive_s=600)
    spare = fv("spare", keep_alive_s=600, concurrency=1)
    await pool.ensure_min_warm(keep, load_ok)
    await asyncio.gather(*(pool.invoke(spare, load_ok, call(b"sleep 0.01")) for _ in range(3)))
    busy = asyncio.ensure_future(pool.invoke(fv("busy"), load_ok, call(b"sleep 30")))
    await asyncio.sleep(1)
    before = pool.status()
    assert before.vms >= 6 and before.idle == 1  # keep, 3 spare, busy, one generic
    # Something else on the host takes memory: 70 MiB below the reserve.
    host.taken_mib = host.available() - RESERVE + 70
    pool.reclaim()  # 70 MiB short at 60 MiB a VM: two VMs go
    await asyncio.sleep(0.1)
    after = pool.status()
    assert after.pressure_evictions == 2
    assert {f.ref.name: f.vms for f in after.functions} == {"keep": 1, "spare": 1, "busy": 1}
    assert after.idle == 1  # spare VMs above min_warm went first, the generic one stays
    pool.reclaim()  # back above the reserve: nothing more goes
    assert pool.status().pressure_evictions == 2
    host.taken_mib += 200  # far short: the generic VM goes, then the min_warm one
    pool.reclaim()
    await asyncio.sleep(0.1)
    names = {f.ref.name for f in pool.status().functions}
    assert names == {"busy"}  # a VM with a call in flight is never stopped for memory
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)


def test_pressure_victims_order() -> None:
    keep, spare = fv("keep", min_warm=1), fv("spare")
    records: list[VMRecord] = []

    def bound(f: object, last_used: float, vm_id: int) -> VMRecord:
        vm = VMRecord.booting(vm_id, f)
        vm.booted(object(), last_used)
        vm.loaded(last_used)
        vm.release(last_used)
        return vm

    records = [bound(keep, 5.0, 1), bound(keep, 9.0, 2), bound(spare, 7.0, 3), bound(spare, 1.0, 4)]
    generic = VMRecord.booting(5, None)
    generic.booted(object(), 0.0)
    records.append(generic)
    order = placement.pressure_victims(records, 10, lambda f: False)
    # spare ones LRU first (keep's older VM is above its min_warm too), then generic,
    # then keep's most recently used VM, the one its min_warm keeps.
    assert [vm.id for vm in order] == [4, 1, 3, 5, 2]
    assert placement.pressure_victims(records, 2, lambda f: False) == order[:2]
    # A retired version keeps nothing.
    retired = placement.pressure_victims(records, 10, lambda f: f.name == "keep")
    assert retired[-1].id == 5
