"""The pool's side of per-version templates, on fakes: asked for after a real load, used
by later cold starts of the version, dropped when the version is retired."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.model import StartKind
from tests.scheduler.pool.test_pool import FakeFactory, PoolMaker, call, fv, load_ok
from tests.virtual_time import virtual_time


@pytest.fixture
def pools() -> PoolMaker:
    factory = FakeFactory()
    factory.templates_on = True
    return PoolMaker(factory)


class Loads:
    """An artifact loader that counts how often the pool fetched the artifact."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> tuple[bytes, bytes | None]:
        self.count += 1
        return await load_ok()


@virtual_time
async def test_a_later_cold_start_comes_loaded_from_the_template(pools: PoolMaker) -> None:
    factory = pools.factory
    pool = pools()
    v1, loads = fv("a", 1, keep_alive_s=1), Loads()
    await pool.invoke(v1, loads, call())
    assert loads.count == 1
    # Counted as being made from the moment of the load (its maker is a QEMU of its own).
    assert (pool.status().templates, pool.status().templates_making) == (0, 1)
    await asyncio.sleep(0.2)  # the template is made in the background
    assert factory.templates == {"a@1"}
    assert (pool.status().templates, pool.status().templates_making) == (1, 0)
    await asyncio.sleep(2)
    pool.reclaim()  # keep-alive over: the VM goes
    assert pool.status().bound == 0
    result, kind, *_ = await pool.invoke(v1, loads, call())
    assert kind is StartKind.COLD and result.stdout == b"a@1 vm2"
    assert loads.count == 1  # came loaded: no artifact fetched, nothing sent
    assert factory.sandboxes[1].preloaded == "a@1"
    # A template is asked for once per version, not after every load.
    assert factory.templates == {"a@1"}


@virtual_time
async def test_retiring_a_version_drops_its_template(pools: PoolMaker) -> None:
    factory = pools.factory
    pool = pools()
    v1, v2 = fv("a", 1), fv("a", 2)
    await pool.invoke(v1, load_ok, call())
    await pool.invoke(fv("b"), load_ok, call())
    await asyncio.sleep(0.2)
    await pool.invoke(v2, load_ok, call())
    await asyncio.sleep(0.2)
    assert factory.templates == {"a@1", "a@2", "b@1"}
    await pool.drain("a", keep=v2.ref)  # a deploy of a@2 (or a rollback to it)
    assert factory.templates == {"a@2", "b@1"}
    await pool.drain("a")  # delete
    assert factory.templates == {"b@1"}


@virtual_time
async def test_a_template_retired_while_it_is_made_is_not_kept(pools: PoolMaker) -> None:
    factory = pools.factory
    factory.template_delay_s = 1.0
    pool = pools()
    await pool.invoke(fv("a", 1), load_ok, call())
    await asyncio.sleep(0.1)  # being made
    await pool.drain("a")
    await asyncio.sleep(2)
    # The fake keeps what it finished; the pool asked it to forget first, so the
    # real store drops it on arrival (tests/unikernel/test_templates.py).
    assert factory.forgotten == ["a@1"]


@virtual_time
async def test_no_template_is_asked_for_without_templates(pools: PoolMaker) -> None:
    factory = pools.factory
    factory.templates_on = False
    pool = pools()
    await pool.invoke(fv("a", 1), load_ok, call())
    await asyncio.sleep(0.2)
    assert factory.templates == set()


@virtual_time
async def test_closing_cancels_a_template_being_made(pools: PoolMaker) -> None:
    # A template VM yields its CPU to calls' VMs: on a busy host it can take minutes,
    # and a stopping pool (SIGTERM) must not wait for it.
    factory = pools.factory
    factory.template_delay_s = 3600
    pool = pools()
    await pool.invoke(fv("a", 1), load_ok, call())
    await asyncio.sleep(1)
    assert pool.status().templates_making == 1
    await asyncio.wait_for(pool.close(), 5)
    assert factory.templates == set() and pool.status().templates_making == 0
