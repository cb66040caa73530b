"""The autoscaling rule as a table over sample histories, then the node's loop on a fake pool
clock: VMs are added before a busy function's slots run out."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.errors import FunctionNotFound
from scheduler.model import Admission, FunctionVersion
from scheduler.scaling.admission import Throttle
from scheduler.scaling.autoscaler import Autoscaler
from scheduler.scaling.policy import FunctionScaler, ScalePolicy
from tests.scheduler.pool.test_pool import FakeFactory, PoolMaker, call, fv, load_ok
from tests.virtual_time import virtual_time

POLICY = ScalePolicy(stable_window_s=60, panic_window_s=6, tick_s=1)


def scaler_after(history: list[tuple[float, float]]) -> FunctionScaler:
    scaler = FunctionScaler(POLICY)
    for t, n in history:
        scaler.observe(t, n)
    return scaler


def steady(n: float, seconds: int = 60, start: int = 0) -> list[tuple[float, float]]:
    return [(float(t), n) for t in range(start, start + seconds)]


@pytest.mark.parametrize(
    ("history", "current", "desired", "panic"),
    [
        # concurrency 4 at 70%: 2.8 calls per VM is the target.
        (steady(2.0), 1, 1, False),
        (steady(2.8), 1, 1, False),
        # A second VM before the first's 4 slots are full (wanting twice the VMs is a panic).
        (steady(3.0), 1, 2, True),
        (steady(9.0), 3, 4, False),  # capped at max_vms 4
        (steady(0.5), 2, 1, False),  # scale down follows the stable window
        (steady(0.0, 30) + steady(12.0, 6, start=30), 1, 4, True),  # a burst: panic
        (steady(0.0, 50) + steady(2.0, 3, start=50), 0, 1, False),  # the first VM, calmly
    ],
)
def test_the_rule(
    history: list[tuple[float, float]], current: int, desired: int, panic: bool
) -> None:
    now = history[-1][0]
    decision = scaler_after(history).decide(now, current, 4, 0, 4)
    assert (decision.desired, decision.panic) == (desired, panic)


def test_no_scale_down_while_panicking_and_then_back_to_the_stable_average() -> None:
    scaler = scaler_after(steady(0.0, 30) + steady(12.0, 6, start=30))
    assert scaler.decide(35, 1, 4, 0, 4).desired == 4
    for t in range(36, 60):  # the burst is over
        scaler.observe(t, 1.0)
    held = scaler.decide(59, 4, 4, 0, 4)
    assert held.panic and held.desired == 4  # still within a stable window of the panic
    for t in range(60, 100):  # a stable window after the panic began
        scaler.observe(t, 1.0)
    calm = scaler.decide(99, 4, 4, 0, 4)
    assert not calm.panic and calm.desired == 1


def test_min_warm_is_a_floor_and_idle_means_no_decision() -> None:
    scaler = scaler_after(steady(0.0))
    assert scaler.idle
    assert scaler.decide(59, 0, 4, 2, 4).desired == 2
    assert not scaler_after([*steady(0.0, 59), (59.0, 1.0)]).idle


class Versions:
    """The node cache's one method the autoscaler uses."""

    def __init__(self, *versions: FunctionVersion) -> None:
        self._by_name = {v.name: v for v in versions}

    async def current(self, name: str) -> FunctionVersion:
        return self._by_name[name]


@pytest.fixture
def pools() -> PoolMaker:
    return PoolMaker(FakeFactory())


@virtual_time
async def test_the_node_adds_a_vm_before_the_slots_run_out(pools: PoolMaker) -> None:
    pool = pools(max_vms=4)
    await pool.start()
    f = fv("busy", concurrency=2, max_vms=3)
    throttle = Throttle()
    scaler = Autoscaler(pool, Versions(f), throttle, lambda _: load_ok, POLICY)  # type: ignore[arg-type]

    async def one_call() -> None:
        with throttle.admit("busy", Admission(max_in_flight=10)):
            await pool.invoke(f, load_ok, call(b"sleep 5"))

    await pool.invoke(f, load_ok, call())  # its one VM, warm
    # Two calls in flight fill that VM's two slots: 100% of it, above the 70% target.
    calls = [asyncio.ensure_future(one_call()) for _ in range(2)]
    await asyncio.sleep(0.5)
    assert pool.status().of("busy")[0].vms == 1
    for _ in range(3):
        await asyncio.sleep(1)
        await scaler.tick()
    assert scaler.decisions["busy"].desired == 2
    assert scaler.scale_ups["busy"] >= 1
    await asyncio.sleep(1)  # the second VM boots while nothing waits for it
    assert pool.status().of("busy")[0].vms == 2
    await asyncio.gather(*calls)
    # The calls are over: the stable window still remembers them, but once the
    # keep-alive reclaims the VMs, the autoscaler does not bring them back.
    await asyncio.sleep(f.config.keep_alive_s + 1)
    pool.reclaim()
    assert pool.status().of("busy") == ()
    for _ in range(3):
        await asyncio.sleep(1)
        await scaler.tick()
    assert scaler.decisions["busy"].desired >= 1  # the window's memory of the burst
    await asyncio.sleep(1)
    assert pool.status().of("busy") == ()
    await scaler.close()


async def test_a_function_deleted_while_busy_is_dropped() -> None:
    class Gone:
        async def current(self, name: str) -> FunctionVersion:
            raise FunctionNotFound(name)

    class Pool:
        def status(self) -> object:
            return None

    throttle = Throttle()
    scaler = Autoscaler(Pool(), Gone(), throttle, lambda _: load_ok, POLICY)  # type: ignore[arg-type]
    with throttle.admit("gone", Admission(max_in_flight=1)):
        await scaler.tick()
    assert scaler.decisions == {} and scaler.scale_ups == {}
