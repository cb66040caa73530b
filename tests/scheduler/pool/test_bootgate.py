"""The boot gate: a limit on boots at once, lowest priority first, no slot lost to cancellation."""

from __future__ import annotations

import asyncio

from scheduler.pool.bootgate import BootGate, Priority, speculative


def top() -> int:
    return 0


async def hold(gate: BootGate, priority: Priority, order: list[str], name: str, s: float) -> None:
    async with gate.slot(priority):
        order.append(name)
        await asyncio.sleep(s)


async def test_limit_and_priority() -> None:
    gate = BootGate(1)
    order: list[str] = []
    first = asyncio.create_task(hold(gate, speculative, order, "first", 0.02))
    await asyncio.sleep(0)
    tasks = [
        asyncio.create_task(hold(gate, speculative, order, "spec-1", 0)),
        asyncio.create_task(hold(gate, top, order, "urgent-1", 0)),
        asyncio.create_task(hold(gate, speculative, order, "spec-2", 0)),
        asyncio.create_task(hold(gate, top, order, "urgent-2", 0)),
    ]
    await asyncio.sleep(0)
    assert (gate.running, gate.waiting) == (1, 4)
    await asyncio.gather(first, *tasks)
    assert order == ["first", "urgent-1", "urgent-2", "spec-1", "spec-2"]
    assert (gate.running, gate.waiting) == (0, 0)


async def test_cancelled_waiter_gives_up_its_place() -> None:
    gate = BootGate(1)
    order: list[str] = []
    first = asyncio.create_task(hold(gate, top, order, "first", 0.02))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(hold(gate, top, order, "doomed", 0))
    after = asyncio.create_task(hold(gate, top, order, "after", 0))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(first, after, return_exceptions=True)
    assert doomed.cancelled() and order == ["first", "after"]
    assert gate.running == 0


async def test_cancelled_after_grant_passes_the_slot_on() -> None:
    gate = BootGate(1)
    order: list[str] = []
    held = gate.slot(top)
    await held.__aenter__()
    granted = asyncio.create_task(hold(gate, top, order, "granted", 0))
    after = asyncio.create_task(hold(gate, top, order, "after", 0))
    await asyncio.sleep(0)
    await held.__aexit__(None, None, None)  # hands the slot to "granted", which has not run
    granted.cancel()
    await asyncio.gather(granted, after, return_exceptions=True)
    assert granted.cancelled() and order == ["after"]
    assert gate.running == 0


async def test_no_limit() -> None:
    gate = BootGate(None)
    order: list[str] = []
    await asyncio.gather(*(hold(gate, top, order, str(i), 0.01) for i in range(5)))
    assert len(order) == 5 and gate.running == 0


async def test_priority_is_read_when_a_slot_frees() -> None:
    gate = BootGate(1)
    order: list[str] = []
    booted = {"x": 0, "y": 0}
    held = gate.slot(top)
    await held.__aenter__()
    tasks = [
        asyncio.create_task(hold(gate, lambda: booted["x"], order, "x", 0)),
        asyncio.create_task(hold(gate, lambda: booted["y"], order, "y", 0)),
    ]
    await asyncio.sleep(0)
    booted["x"] = 1  # x got a VM some other way meanwhile: y goes first
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert order == ["y", "x"]


async def test_speculative_boots_have_a_limit_of_their_own() -> None:
    gate = BootGate(None, speculative_limit=2)
    running: list[str] = []
    started: list[str] = []
    peak = {"speculative": 0}

    async def boot(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            started.append(name)
            running.append(name)
            spec = sum(1 for n in running if n.startswith("s"))
            peak["speculative"] = max(peak["speculative"], spec)
            await asyncio.sleep(0.01)
            running.remove(name)

    specs = [asyncio.create_task(boot(f"s{i}", speculative)) for i in range(6)]
    await asyncio.sleep(0)
    assert gate.waiting == 4  # two run, four wait
    # A call's boot does not wait behind them: it starts at once, beside the two.
    await boot("call", top)
    await asyncio.gather(*specs)
    assert started[:3] == ["s0", "s1", "call"]
    assert peak["speculative"] == 2 and gate.running == 0


async def test_a_claimed_generic_boot_leaves_the_speculative_line() -> None:
    gate = BootGate(None, speculative_limit=1)
    claimed = {"x": False}
    held = gate.slot(speculative)
    await held.__aenter__()
    waiter = asyncio.create_task(boot_when(gate, lambda: 0 if claimed["x"] else speculative()))
    await asyncio.sleep(0)
    assert gate.waiting == 1
    claimed["x"] = True  # a call claimed the VM this boot is for
    gate.reranked()
    await asyncio.wait_for(waiter, timeout=0.01)  # served while the speculative slot is held
    await held.__aexit__(None, None, None)
    assert gate.running == 0


async def boot_when(gate: BootGate, priority: Priority) -> None:
    async with gate.slot(priority):
        await asyncio.sleep(0)
