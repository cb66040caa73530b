"""The warm pool against in-memory fake sandboxes: placement, queueing, eviction, reclaim, drain."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from scheduler.errors import CapacityExhausted, PoolClosed, SandboxLost, SandboxUnavailable
from scheduler.model import FunctionConfig, FunctionVersion, StartKind
from scheduler.pool.pool import Pool
from scheduler.pool.sandbox import HostConfinement, HostLimits, translated
from scheduler.settings import PoolSettings
from tests.virtual_time import virtual_time
from unikernel.errors import VMGone, VMLaunchError
from wasm_runtime.errors import InvalidModule, ProtocolError
from wasm_runtime.hostcalls import HostHandler
from wasm_runtime.replies import LoadReply
from wasm_runtime.types import Invocation, InvocationResult, Outcome

BAD_ARTIFACT = b"bad"


class FakeSandbox:
    """Runs "calls" by sleeping; stdin ``sleep <s>`` sets the duration, ``die`` kills it."""

    def __init__(self, factory: FakeFactory, number: int) -> None:
        self.factory = factory
        self.number = number
        self.loaded: list[str] = []
        self.stopped = False
        self.dead = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.warm_ups = 0
        self.restored = False
        self.preloaded: str | None = None
        self.frozen = False  # stops answering (SIGSTOP)
        self.pings = 0
        self.ping_delay_s = 0.0
        self.memory_limit: int | None = None
        self.private_kib_value = 40 * 1024
        self._gone = asyncio.Event()

    @property
    def alive(self) -> bool:
        return not self.stopped and not self.dead

    async def load(self, fn_id: str, artifact: bytes, *, files: bytes | None = None) -> LoadReply:
        await asyncio.sleep(self.factory.load_delay_s)
        if artifact == BAD_ARTIFACT:
            raise InvalidModule("not_wasm", "not a module")
        self.loaded.append(fn_id)
        return LoadReply(fn_id)

    async def invoke(
        self, fn_id: str, invocation: Invocation, hostcalls: HostHandler | None = None
    ) -> InvocationResult:
        if not self.alive:
            raise VMGone("fake is gone")
        assert fn_id in self.loaded
        if invocation.stdin == b"die" or (
            invocation.stdin == b"die-once" and self.factory.die_once_left > 0
        ):
            self.factory.die_once_left -= 1
            self.dead = True
            self._gone.set()
            raise VMGone("fake died")
        if invocation.stdin == b"garbage":
            raise ProtocolError("the agent's invoke reply is malformed")
        if self.frozen:  # like the shim: given up on after a long while, then killed
            await asyncio.sleep(60)
            self.dead = True
            self._gone.set()
            raise VMGone("call timed out on a frozen VM; killed")
        delay = self.factory.invoke_delay_s
        if invocation.stdin.startswith(b"sleep "):
            delay = float(invocation.stdin.split()[1])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.wait_for(self._gone.wait(), delay)
        except TimeoutError:
            pass
        else:
            raise VMGone("fake stopped during the call")
        finally:
            self.in_flight -= 1
        return InvocationResult(Outcome.OK, 0, stdout=f"{fn_id} vm{self.number}".encode())

    async def warm_up(self) -> None:
        self.warm_ups += 1

    async def ping(self, timeout_s: float) -> float:
        """A frozen fake never answers: like MicroVM, it is killed at the deadline."""
        self.pings += 1
        await asyncio.sleep(self.ping_delay_s)
        if self.frozen:
            await asyncio.sleep(timeout_s)
            self.dead = True
            self._gone.set()
            raise VMGone("ping got no answer; killed")
        return 0.001

    async def stop(self) -> None:
        self.stopped = True
        self._gone.set()

    def rss_kib(self) -> int:
        return 0 if self.stopped else 1000

    def private_kib(self) -> int:
        return 0 if self.stopped else self.private_kib_value

    def limit_memory(self, memory_bytes: int) -> None:
        self.memory_limit = memory_bytes


class FakeFactory:
    def __init__(self, boot_delay_s: float = 0.01) -> None:
        self.boot_delay_s = boot_delay_s
        self.load_delay_s = 0.0
        self.invoke_delay_s = 0.0
        self.fail_boots = 0
        self.sandboxes: list[FakeSandbox] = []
        self.max_live = 0
        self.memory_budget_mib: int | None = None
        self.vm_memory_mib: int | None = None
        self.vm_ceiling_mib: int | None = None  # set: pools admit VMs by (fake) meminfo
        self.die_once_left = 1  # VMs a b"die-once" call kills before it succeeds
        self.templates_on = False  # keep "templates": boots of their version come loaded
        self.templates: set[str] = set()
        self.forgotten: list[str] = []
        self.template_delay_s = 0.05

    def host_limits(self) -> HostLimits:
        return HostLimits(
            vm_ceiling_mib=self.vm_ceiling_mib,
            memory_budget_mib=self.memory_budget_mib,
            confinement=HostConfinement(memory_limit_mib=self.vm_memory_mib),
        )

    def wants_template(self, fn_id: str) -> bool:
        return self.templates_on and fn_id not in self.templates

    async def keep_template(self, fn_id: str, artifact: bytes, files: bytes | None) -> None:
        await asyncio.sleep(self.template_delay_s)
        self.templates.add(fn_id)

    def forget_template(self, fn_id: str) -> None:
        self.forgotten.append(fn_id)
        self.templates.discard(fn_id)

    def templates_held(self) -> int:
        return len(self.templates)

    def live(self) -> list[FakeSandbox]:
        return [s for s in self.sandboxes if not s.stopped]

    async def close(self) -> None:
        pass

    async def boot(self, fn_id: str | None = None) -> FakeSandbox:
        await asyncio.sleep(self.boot_delay_s)
        if self.fail_boots:
            self.fail_boots -= 1
            raise VMLaunchError("fake launch failed", 1, ["qemu"], "")
        sandbox = FakeSandbox(self, len(self.sandboxes) + 1)
        if fn_id in self.templates:
            sandbox.preloaded = fn_id
            sandbox.loaded.append(fn_id)
        self.sandboxes.append(sandbox)
        self.max_live = max(self.max_live, len(self.live()))
        return sandbox


def fv(name: str = "a", version: int = 1, **config: Any) -> FunctionVersion:
    return FunctionVersion(name, version, "m", "x", None, FunctionConfig(**config), 0.0)


async def load_ok() -> tuple[bytes, bytes | None]:
    return b"artifact", None


async def load_bad() -> tuple[bytes, bytes | None]:
    return BAD_ARTIFACT, None


def call(stdin: bytes = b"") -> Invocation:
    return Invocation(stdin=stdin)


def functions_of(pool: Pool) -> dict[str, dict[str, int]]:
    """VMs per version, keyed name@version, as /v1/status shows them."""
    return {
        str(f.ref): {"vms": f.vms, "in_flight": f.in_flight, "draining": f.draining}
        for f in pool.status().functions
    }


async def settle(pool: Pool) -> None:
    """Wait for background boots to finish."""
    for _ in range(200):
        if not pool.status().booting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("pool did not settle")


async def stopped_in_background() -> None:
    """Let the pool's background stop tasks run."""
    await asyncio.sleep(0.01)


class PoolMaker:
    """Makes pools on the test's (virtual-time) loop and closes them all on it afterwards."""

    def __init__(self, factory: FakeFactory) -> None:
        self.factory = factory
        self.pools: list[Pool] = []

    def __call__(self, meminfo: Callable[[], str] | None = None, **settings: Any) -> Pool:
        settings.setdefault("idle_target", 0)
        settings.setdefault("reclaim_interval_s", 60.0)
        clock = asyncio.get_running_loop().time
        extra = {"meminfo": meminfo} if meminfo is not None else {}
        pool = Pool(self.factory, PoolSettings(**settings), clock=clock, **extra)
        self.pools.append(pool)
        return pool

    async def virtual_teardown(self) -> None:
        for pool in self.pools:
            await pool.close()
        # Whatever happened, nothing is left running and no VM served two versions.
        assert self.factory.live() == []
        assert all(len(set(s.loaded)) <= 1 for s in self.factory.sandboxes)


MakePool = PoolMaker


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def make_pool(factory: FakeFactory) -> PoolMaker:
    return PoolMaker(factory)


@virtual_time
async def test_cold_then_warm(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool()
    await pool.start()
    f = fv()
    result, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert (kind, result.stdout) == (StartKind.COLD, b"a@1 vm1")
    _, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert kind is StartKind.WARM
    status = pool.status()
    assert status.bound == 1 and status.boots == 1
    assert functions_of(pool) == {"a@1": {"vms": 1, "in_flight": 0, "draining": 0}}
    assert status.starts == {"warm": 1, "prewarmed": 0, "cold": 1}


@virtual_time
async def test_prewarmed_start_tops_up_idle(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(idle_target=1)
    await pool.start()
    await settle(pool)
    assert pool.status().idle == 1
    _, kind, _, _ = await pool.invoke(fv("a"), load_ok, call())
    assert kind is StartKind.PREWARMED
    await settle(pool)
    assert pool.status().idle == 1  # topped up in the background
    _, kind, _, _ = await pool.invoke(fv("b"), load_ok, call())
    assert kind is StartKind.PREWARMED
    assert [s.loaded for s in factory.sandboxes[:2]] == [["a@1"], ["b@1"]]
    assert [s.warm_ups for s in factory.sandboxes[:2]] == [1, 1]  # generic VMs warm up


@virtual_time
async def test_concurrency_slots(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool()
    f = fv(concurrency=2)
    await pool.invoke(f, load_ok, call())
    kinds = await asyncio.gather(*(pool.invoke(f, load_ok, call(b"sleep 0.05")) for _ in range(3)))
    # The third call queued rather than wait on a VM started for it alone; the VM started
    # meanwhile (10 ms) was ready before a slot freed (50 ms), so it ran there, warm.
    assert [r.start for r in kinds] == [StartKind.WARM] * 3
    assert [s.max_in_flight for s in factory.sandboxes] == [2, 1]


@virtual_time
async def test_a_call_past_the_slots_takes_the_first_to_free_while_a_vm_starts(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.boot_delay_s = 2.0  # a start costs far more than a call, as under TCG
    pool = make_pool()
    f = fv(concurrency=1)
    await pool.invoke(f, load_ok, call())
    busy = asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 0.1")))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert kind is StartKind.WARM and loop.time() - started < 0.2  # not the 2 s start
    await busy
    assert pool.status().booting == 1  # started all the same, for the calls to come
    await asyncio.sleep(3)
    assert pool.status().bound == 2
    await pool.drain("a", keep=fv(version=2).ref)  # a retired version's loader goes too
    assert not pool._loaders


@virtual_time
async def test_bound_vm_gets_its_functions_memory_limit(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.memory_budget_mib, factory.vm_memory_mib = 416, 624
    pool = make_pool()
    await pool.invoke(fv("a", concurrency=2, memory_mib=64), load_ok, call())
    assert factory.sandboxes[0].memory_limit == (624 - (416 - 2 * 64)) * 1024 * 1024


@virtual_time
async def test_bound_vm_never_serves_another_version(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=4)
    for f in (fv("a"), fv("b"), fv("a", 2), fv("a"), fv("b")):
        result, _, _, _ = await pool.invoke(f, load_ok, call())
        assert result.stdout.startswith(f.key.encode())
    assert sorted(s.loaded[0] for s in factory.sandboxes) == ["a@1", "a@2", "b@1"]


@virtual_time
async def test_function_max_vms_queues_instead_of_booting(make_pool: MakePool) -> None:
    pool = make_pool(max_vms=8)
    f = fv(max_vms=1, concurrency=1)
    results = await asyncio.gather(
        *(pool.invoke(f, load_ok, call(b"sleep 0.02")) for _ in range(3))
    )
    assert [k for _, k, *_ in results].count(StartKind.COLD) == 1
    assert pool.status().vms == 1


@virtual_time
async def test_full_node_evicts_lru_idle_vm(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(max_vms=2)
    await pool.invoke(fv("a"), load_ok, call())
    await asyncio.sleep(1)
    await pool.invoke(fv("b"), load_ok, call())
    await asyncio.sleep(1)
    _, kind, _, _ = await pool.invoke(fv("c"), load_ok, call())
    assert kind is StartKind.COLD
    assert pool.status().evictions == 1
    assert factory.sandboxes[0].stopped  # a's VM was the least recently used
    assert sorted(functions_of(pool)) == ["b@1", "c@1"]


@virtual_time
async def test_growing_function_does_not_evict_a_just_used_vm(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=2)
    a = fv("a", concurrency=1)
    await pool.invoke(fv("b"), load_ok, call())  # b's VM: idle, but just used
    busy = asyncio.create_task(pool.invoke(a, load_ok, call(b"sleep 0.1")))
    await asyncio.sleep(0.03)
    # a already has a VM: its second call waits for that slot instead of
    # evicting b and cold-booting.
    _, kind, _, _ = await pool.invoke(a, load_ok, call())
    assert kind is StartKind.WARM
    assert pool.status().evictions == 0
    await busy
    await asyncio.sleep(10)  # b has now been idle long enough to give way
    busy = asyncio.create_task(pool.invoke(a, load_ok, call(b"sleep 0.1")))
    await asyncio.sleep(0.03)
    _, kind, _, _ = await pool.invoke(a, load_ok, call())
    await busy
    # b gave way to a VM started for a's queued call, ready before a's slot freed.
    assert kind is StartKind.WARM and len(factory.live()) == 2
    assert pool.status().evictions == 1


@virtual_time
async def test_eviction_spares_min_warm(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(max_vms=2)
    await pool.invoke(fv("a", min_warm=1), load_ok, call())  # older, but kept warm
    await asyncio.sleep(1)
    await pool.invoke(fv("b"), load_ok, call())
    await asyncio.sleep(1)
    await pool.invoke(fv("c"), load_ok, call())
    assert factory.sandboxes[1].stopped and not factory.sandboxes[0].stopped


@virtual_time
async def test_queue_full_raises_capacity_exhausted(make_pool: MakePool) -> None:
    pool = make_pool(max_vms=1, queue_max=1)
    f = fv(concurrency=1)
    first = asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 0.1")))
    await asyncio.sleep(0.03)
    second = asyncio.create_task(pool.invoke(f, load_ok, call()))
    await asyncio.sleep(0.01)
    assert pool.status().queue_depth == 1
    with pytest.raises(CapacityExhausted) as info:
        await pool.invoke(fv("b"), load_ok, call())
    assert info.value.retry_after_s >= 1
    assert (await first)[1] is StartKind.COLD
    assert (await second)[1] is StartKind.WARM  # the queued call was not lost


@virtual_time
async def test_queue_timeout(make_pool: MakePool) -> None:
    pool = make_pool(max_vms=1, queue_timeout_s=0.05)
    f = fv(concurrency=1)
    busy = asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 0.2")))
    await asyncio.sleep(0.03)
    with pytest.raises(CapacityExhausted, match="within"):
        await pool.invoke(f, load_ok, call())
    assert pool.status().queue_depth == 0
    await busy


@virtual_time
async def test_overload_of_several_functions_all_complete(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=3, idle_target=1, queue_max=200)
    await pool.start()
    rng = random.Random(7)
    fns = [fv(name, concurrency=2, max_vms=2) for name in "abcde"]
    jobs = [(rng.choice(fns), rng.choice([0.0, 0.005, 0.01])) for _ in range(120)]
    results = await asyncio.gather(
        *(pool.invoke(f, load_ok, call(f"sleep {d}".encode())) for f, d in jobs)
    )
    for (f, _), (result, *_) in zip(jobs, results, strict=True):
        assert result.stdout.startswith(f.key.encode())
    assert factory.max_live <= 3
    assert all(s.max_in_flight <= 2 for s in factory.sandboxes)
    status = pool.status()
    assert status.queue_depth == 0 and status.evictions > 0
    assert sum(status.starts.values()) == 120


@virtual_time
async def test_keep_alive_reclaim_keeps_min_warm(make_pool: MakePool) -> None:
    pool = make_pool()
    a, b = fv("a", min_warm=1, keep_alive_s=10, concurrency=1), fv("b", keep_alive_s=10)
    await asyncio.gather(*(pool.invoke(a, load_ok, call(b"sleep 0.01")) for _ in range(2)))
    await pool.invoke(b, load_ok, call())
    assert functions_of(pool)["a@1"]["vms"] == 2
    await asyncio.sleep(5)
    assert pool.reclaim() == 0
    await asyncio.sleep(6)
    assert pool.reclaim() == 2
    assert functions_of(pool) == {"a@1": {"vms": 1, "in_flight": 0, "draining": 0}}
    assert pool.status().reclaims == 2


@virtual_time
async def test_reclaim_loop_runs(make_pool: MakePool) -> None:
    pool = make_pool(reclaim_interval_s=0.01)
    await pool.start()
    await pool.invoke(fv(keep_alive_s=0.0), load_ok, call())
    await asyncio.sleep(0.05)
    assert pool.status().vms == 0


@virtual_time
async def test_ensure_min_warm(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(idle_target=1)
    await pool.start()
    await settle(pool)
    f = fv(min_warm=2)
    await pool.ensure_min_warm(f, load_ok)
    await pool.ensure_min_warm(f, load_ok)  # already there: nothing more
    await settle(pool)
    status = pool.status()
    assert functions_of(pool)["a@1"]["vms"] == 2 and status.idle == 1
    assert status.starts == {"warm": 0, "prewarmed": 0, "cold": 0}
    _, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert kind is StartKind.WARM


@virtual_time
async def test_drain_on_redeploy(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool()
    v1, v2 = fv("a", 1, concurrency=1), fv("a", 2)
    await pool.invoke(v1, load_ok, call())  # vm1: idle, bound to a@1
    busy = asyncio.create_task(pool.invoke(v1, load_ok, call(b"sleep 0.05")))  # warm on vm1
    slow = asyncio.create_task(pool.invoke(v1, load_ok, call(b"sleep 0.05")))  # vm2, started for it
    await asyncio.sleep(0.03)
    idle_vm = asyncio.create_task(pool.invoke(fv("other"), load_ok, call()))
    await idle_vm
    await pool.drain("a", keep=v2.ref)
    assert pool.status().draining == 2
    assert not any(s.stopped for s in factory.sandboxes)
    _, kind, _, _ = await pool.invoke(v2, load_ok, call())
    assert kind is StartKind.COLD  # never the draining a@1 VMs
    await busy
    await slow
    await stopped_in_background()
    assert factory.sandboxes[0].stopped and factory.sandboxes[1].stopped
    assert sorted(functions_of(pool)) == ["a@2", "other@1"]
    await pool.drain("a")  # delete
    assert sorted(functions_of(pool)) == ["other@1"]
    # a call placed for a retired version still completes, and its VM goes afterwards
    _, kind, _, _ = await pool.invoke(v1, load_ok, call())
    assert kind is StartKind.COLD
    assert sorted(functions_of(pool)) == ["other@1"]


@virtual_time
async def test_dead_vm_is_removed(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool()
    f = fv()
    await pool.invoke(f, load_ok, call())
    with pytest.raises(SandboxLost) as info:
        await pool.invoke(f, load_ok, call(b"die"))  # kills its VM every time: max_retries
    assert info.value.retries == 3
    await stopped_in_background()
    assert pool.status().vms == 0 and pool.status().deaths == 4
    assert pool.status().retries == 3
    assert all(sandbox.stopped for sandbox in factory.sandboxes[:4])
    _, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert kind is StartKind.COLD
    factory.sandboxes[4].dead = True  # died while idle
    _, kind, retries, _ = await pool.invoke(f, load_ok, call())
    assert (kind, retries) == (StartKind.COLD, 0)  # found dead before placing: no retry
    await stopped_in_background()
    assert factory.sandboxes[4].stopped and pool.status().deaths == 5


@virtual_time
async def test_failed_load_does_not_leak(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(idle_target=1)
    await pool.start()
    await settle(pool)
    with pytest.raises(InvalidModule):
        await pool.invoke(fv(), load_bad, call())  # prewarmed VM
    with pytest.raises(InvalidModule):
        await pool.invoke(fv(), load_bad, call())
    await stopped_in_background()
    assert factory.sandboxes[0].stopped
    assert "a@1" not in functions_of(pool)


@virtual_time
async def test_boot_failure_frees_the_slot(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(max_vms=1)
    factory.fail_boots = 1
    with pytest.raises(SandboxUnavailable):
        await pool.invoke(fv(), load_ok, call())
    assert pool.status().vms == 0 and pool.status().boot_failures == 1
    _, kind, _, _ = await pool.invoke(fv(), load_ok, call())
    assert kind is StartKind.COLD


@virtual_time
async def test_close_stops_everything(make_pool: MakePool, factory: FakeFactory) -> None:
    factory.boot_delay_s = 0.05
    pool = make_pool(max_vms=3, idle_target=1)
    await pool.start()
    await settle(pool)
    await pool.invoke(fv("a"), load_ok, call())  # prewarmed; a generic boot follows
    running = asyncio.create_task(pool.invoke(fv("a"), load_ok, call(b"sleep 5")))
    booting = asyncio.create_task(pool.invoke(fv("b"), load_ok, call()))
    await asyncio.sleep(0.01)
    assert pool.status().booting == 2
    await asyncio.wait_for(pool.close(), 1)
    await pool.close()  # idempotent
    with pytest.raises(PoolClosed):  # its VM stopped; no retry on a closed pool
        await running
    with pytest.raises(PoolClosed):
        await booting
    with pytest.raises(PoolClosed):
        await pool.invoke(fv("a"), load_ok, call())
    await asyncio.sleep(0.1)  # boots that were cancelled must not come back to life
    assert factory.live() == []
    assert pool.status().vms == 0 and pool.status().closed


@virtual_time
async def test_cancelled_waiter_leaves_the_queue(make_pool: MakePool) -> None:
    pool = make_pool(max_vms=1)
    f = fv(concurrency=1)
    busy = asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 0.05")))
    await asyncio.sleep(0.02)
    waiter = asyncio.create_task(pool.invoke(f, load_ok, call()))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.status().queue_depth == 0
    await busy
    assert functions_of(pool)["a@1"]["in_flight"] == 0
    assert pool.status().bound == 1


def test_slots_fit_memory_caps_in_the_guest() -> None:
    from scheduler.model import FunctionConfig, FunctionVersion
    from scheduler.pool.placement import slots

    def fv(concurrency: int, memory_mib: int, artifact_mib: float = 0) -> FunctionVersion:
        config = FunctionConfig(concurrency=concurrency, memory_mib=memory_mib)
        artifact_bytes = int(artifact_mib * 1024 * 1024)
        return FunctionVersion("f", 1, "m", "a", None, config, 0.0, artifact_bytes=artifact_bytes)

    assert slots(fv(4, 64), None) == 4
    assert slots(fv(4, 64), 416) == 4
    assert slots(fv(8, 128), 416) == 3
    assert slots(fv(4, 1024), 416) == 1  # one call always fits: its cap may exceed use
    # The guest holds the artifact too: 416 - 100 leaves 2 calls of 128, and a part of a
    # MiB counts whole (416 - 33 leaves 5 of 64, not 6).
    assert slots(fv(8, 128, artifact_mib=100), 416) == 2
    assert slots(fv(8, 64, artifact_mib=32.01), 416) == 5
    assert slots(fv(8, 64, artifact_mib=32), 416) == 6


@virtual_time
async def test_boot_gate_limits_boots_and_calls_claim_generic_boots(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.boot_delay_s = 0.05
    booting = 0
    most = 0
    real_boot = factory.boot

    async def counted_boot(fn_id: str | None = None) -> FakeSandbox:
        nonlocal booting, most
        booting += 1
        most = max(most, booting)
        try:
            return await real_boot(fn_id)
        finally:
            booting -= 1

    factory.boot = counted_boot  # type: ignore[method-assign]
    pool = make_pool(max_vms=6, idle_target=2, boot_concurrency=1)
    await pool.start()  # two generic boots queued: one runs, one waits
    await asyncio.sleep(0)
    assert pool.status().boots_waiting == 1
    results = await asyncio.gather(*(pool.invoke(fv(n), load_ok, call()) for n in "ab"))
    # Both calls took the generic VMs already on their way instead of booting their own.
    assert sorted(r.stdout for r, *_ in results) == [b"a@1 vm1", b"b@1 vm2"]
    assert {kind for _, kind, *_ in results} == {StartKind.COLD}
    await settle(pool)
    assert most == 1
    assert pool.status().idle == 2 and pool.status().boots_waiting == 0


@virtual_time
async def test_call_claims_a_generic_vm_while_it_boots(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.boot_delay_s = 0.05
    started: list[asyncio.Task[Any] | None] = []
    real_boot = factory.boot

    async def tagged_boot(fn_id: str | None = None) -> FakeSandbox:
        started.append(asyncio.current_task())
        sandbox = await real_boot(fn_id)
        sandbox.start_order = started.index(asyncio.current_task()) + 1  # type: ignore[attr-defined]
        return sandbox

    factory.boot = tagged_boot  # type: ignore[method-assign]
    pool = make_pool(idle_target=1)
    await pool.start()
    await asyncio.sleep(0)  # the generic VM's boot has started
    _, kind, _, _ = await pool.invoke(fv("a"), load_ok, call())
    assert kind is StartKind.COLD
    # The call ran on the VM whose boot started first: the generic one it claimed.
    served_by = next(s for s in factory.sandboxes if s.loaded == ["a@1"])
    assert served_by.start_order == 1  # type: ignore[attr-defined]
    await settle(pool)
    assert pool.status().idle == 1 and pool.status().boots == 2


@virtual_time
async def test_claimed_generic_boot_failing_costs_the_call_a_retry(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.boot_delay_s = 0.05
    factory.fail_boots = 1
    pool = make_pool(idle_target=1)
    await pool.start()
    result, kind, retries, _ = await pool.invoke(fv("a"), load_ok, call())
    assert (result.outcome, retries) == (Outcome.OK, 1)
    assert kind in (StartKind.COLD, StartKind.PREWARMED)  # whichever boot was ready first
    assert pool.status().boot_failures == 1


@virtual_time
async def test_boot_gate_boots_each_functions_first_vm_first(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.boot_delay_s = 0.05
    pool = make_pool(max_vms=4, boot_concurrency=1)
    a, b = fv("a", max_vms=3), fv("b", max_vms=3)
    # Three calls of a ask for three VMs before b's first call arrives.
    calls_a = [asyncio.create_task(pool.invoke(a, load_ok, call(b"sleep 1"))) for _ in range(3)]
    await asyncio.sleep(0)
    call_b = asyncio.create_task(pool.invoke(b, load_ok, call()))
    await call_b
    # b's only VM booted second, before a's second and third.
    assert factory.sandboxes[1].loaded == ["b@1"]
    assert [s.loaded for s in factory.sandboxes] == [["a@1"], ["b@1"]]
    await asyncio.gather(*calls_a)


@virtual_time
async def test_a_call_whose_vm_dies_runs_again_on_another(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool()
    f = fv(concurrency=2)
    await pool.invoke(f, load_ok, call())  # vm1, warm from now on
    second = asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 1")))  # vm1 too
    await asyncio.sleep(0.1)
    result, kind, retries, _ = await pool.invoke(f, load_ok, call(b"die-once"))
    # vm1 died under both calls: each ran again, on a new VM, and answered.
    assert (result.outcome, kind, retries) == (Outcome.OK, StartKind.COLD, 1)
    other = await second
    assert (other.result.outcome, other.retries) == (Outcome.OK, 1)
    assert pool.status().retries == 2 and pool.status().deaths == 1
    assert factory.sandboxes[0].stopped


@virtual_time
async def test_garbage_from_the_agent_is_a_lost_vm(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool()
    with pytest.raises(SandboxLost, match="malformed") as info:
        await pool.invoke(fv(), load_ok, call(b"garbage"))
    assert info.value.retries == 3
    await stopped_in_background()
    assert len(factory.sandboxes) == 4 and factory.live() == []


@virtual_time
async def test_overlapping_losses_take_more_than_one_retry(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    factory.die_once_left = 2  # the call's first VM dies under it, and the next one too
    pool = make_pool()
    result, _, retries, _ = await pool.invoke(fv(), load_ok, call(b"die-once"))
    assert (result.outcome, retries) == (Outcome.OK, 2)
    assert pool.status().retries == 2 and pool.status().deaths == 2


@virtual_time
async def test_no_retry_once_the_calls_own_deadline_has_passed(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    # Deadline: 30 s of queue and 1 s of run from arrival. Each VM takes 20 s to boot, so
    # the run again starts at 20 s (time left) and is lost at 40 s: past it, no third run.
    factory.boot_delay_s = 20.0
    pool = make_pool(queue_timeout_s=30.0)
    with pytest.raises(SandboxLost) as info:
        await pool.invoke(fv(timeout_s=1.0), load_ok, call(b"die"))
    assert info.value.retries == 1 and pool.status().deaths == 2


@virtual_time
async def test_max_retries_is_a_setting(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(max_retries=0)
    with pytest.raises(SandboxLost) as info:
        await pool.invoke(fv(), load_ok, call(b"die"))
    assert info.value.retries == 0 and len(factory.sandboxes) == 1


@virtual_time
async def test_a_run_again_passes_by_a_vm_that_does_not_answer_a_ping(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=3, ping_timeout_s=5.0, doubt_after_s=1.0)
    f = fv(concurrency=2, max_vms=3)
    await pool.invoke(f, load_ok, call())  # vm1
    both = [asyncio.create_task(pool.invoke(f, load_ok, call(b"sleep 1"))) for _ in range(3)]
    await asyncio.gather(*both)  # vm1 and vm2 warm
    # The next call goes to the VM used last; the other one is frozen (SIGSTOP: alive to
    # the host, it answers nothing).
    older = min(pool._vms.values(), key=lambda vm: vm.last_used).sandbox
    vm2 = next(sandbox for sandbox in factory.sandboxes if sandbox is older)
    vm2.frozen = True
    result, kind, retries, _ = await pool.invoke(f, load_ok, call(b"die-once"))
    # Its VM died under it; the warm slot left was the frozen VM's, which did not answer
    # within 1 s: the call ran on a new VM instead, and the frozen one is passed by.
    assert (result.outcome, kind, retries) == (Outcome.OK, StartKind.COLD, 1)
    assert result.stdout == b"a@1 vm3"
    assert vm2.pings == 1 and not vm2.stopped
    new_call = await pool.invoke(f, load_ok, call())
    assert new_call.result.stdout == b"a@1 vm3"  # not on the doubted vm2
    await asyncio.sleep(5)  # its ping's own deadline: killed as hung
    assert vm2.stopped or vm2.dead
    assert pool.status().hung == 1


@virtual_time
async def test_a_vm_slow_to_answer_its_ping_is_doubted_then_trusted_again(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(
        reclaim_interval_s=1.0, health_interval_s=5.0, ping_timeout_s=5.0, doubt_after_s=1.0
    )
    await pool.start()
    f = fv(min_warm=1)
    await pool.invoke(f, load_ok, call())
    slow = factory.sandboxes[0]
    slow.ping_delay_s = 3.0  # answers, but late
    (record,) = pool._vms.values()
    for _ in range(100):  # within two health periods, a ping has gone unanswered for 1 s
        await asyncio.sleep(0.1)
        if record.doubted:
            break
    assert record.doubted and not slow.stopped
    _, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert kind is StartKind.COLD  # the doubted VM was passed by
    await asyncio.sleep(2.1)  # the ping's answer, 3 s after it was sent
    assert not record.doubted and not slow.stopped and pool.status().hung == 0


@virtual_time
async def test_function_failures_are_answers_never_retried(make_pool: MakePool) -> None:
    pool = make_pool()
    with pytest.raises(InvalidModule):
        await pool.invoke(fv(), load_bad, call())
    assert pool.status().retries == 0


@virtual_time
async def test_a_frozen_idle_vm_is_found_by_its_ping_and_replaced(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(reclaim_interval_s=1.0, health_interval_s=5.0, ping_timeout_s=2.0)
    await pool.start()
    f = fv(min_warm=1)
    await pool.invoke(f, load_ok, call())
    healthy = factory.sandboxes[0]
    await asyncio.sleep(12)  # two health periods: pinged, answered, kept
    assert healthy.pings >= 2 and not healthy.stopped and pool.status().hung == 0
    healthy.frozen = True
    await asyncio.sleep(8)  # the next ping misses its deadline
    assert healthy.stopped and pool.status().hung == 1 and pool.status().vms == 0
    result, kind, _, _ = await pool.invoke(f, load_ok, call())
    assert (result.outcome, kind) == (Outcome.OK, StartKind.COLD)


@virtual_time
async def test_busy_vms_are_not_pinged(make_pool: MakePool, factory: FakeFactory) -> None:
    pool = make_pool(reclaim_interval_s=1.0, health_interval_s=1.0)
    await pool.start()
    await pool.invoke(fv(), load_ok, call(b"sleep 10"))  # busy through ten periods
    assert factory.sandboxes[0].pings == 0


@virtual_time
async def test_a_call_reports_its_round_trip_to_the_vm(make_pool: MakePool) -> None:
    pool = make_pool()
    await pool.start()
    ran = await pool.invoke(fv(), load_ok, call(b"sleep 0.25"))
    assert ran.vm_ms == pytest.approx(250, abs=1)  # the call itself, not the boot before it


@virtual_time
async def test_min_warm_is_kept_when_it_could_not_start_or_its_vm_died(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=1)
    other, kept = fv("other", keep_alive_s=5), fv("kept", min_warm=1, keep_alive_s=600)
    busy = asyncio.ensure_future(pool.invoke(other, load_ok, call(b"sleep 3")))
    await asyncio.sleep(0.1)
    await pool.ensure_min_warm(kept, load_ok)  # the node is full: nothing starts now
    assert "kept@1" not in functions_of(pool)
    await busy
    await asyncio.sleep(6)
    pool.reclaim()  # other's VM goes for its keep-alive; kept's min_warm VM comes back
    await asyncio.sleep(0.1)
    assert functions_of(pool) == {"kept@1": {"vms": 1, "in_flight": 0, "draining": 0}}
    (vm,) = factory.live()
    vm.dead = True  # its VM dies while idle
    pool.reclaim()
    await asyncio.sleep(0.1)
    assert functions_of(pool)["kept@1"]["vms"] == 1 and factory.live() != [vm]
    assert pool.status().deaths == 1
    await pool.drain("kept")  # deleted: no min_warm any more
    pool.reclaim()
    await asyncio.sleep(0.1)
    assert functions_of(pool) == {} and factory.live() == []


@virtual_time
async def test_min_warm_that_cannot_start_is_tried_again_later_and_later(
    make_pool: MakePool, factory: FakeFactory
) -> None:
    pool = make_pool(max_vms=2)
    broken = fv("broken", min_warm=1)
    with pytest.raises(InvalidModule):
        await pool.ensure_min_warm(broken, load_bad)  # its load fails
    tries = len(factory.sandboxes)
    for _ in range(12):  # one reclaim tick a second for 12 s
        await asyncio.sleep(1)
        pool.reclaim()
    # Tried at about 1, 2, 4 and 8 s (each failure doubles the wait), not on every tick.
    assert len(factory.sandboxes) - tries == 4


def test_a_vm_killed_while_it_starts_is_lost_not_unavailable() -> None:
    # A call waiting on that boot runs again; a guest that cannot boot stays unavailable.
    with pytest.raises(SandboxLost, match="signal 9"), translated():
        raise VMLaunchError("QEMU exited while waiting for the agent", -9, ["qemu"], "")
    for exitcode in (None, 1):
        with pytest.raises(SandboxUnavailable), translated():
            raise VMLaunchError("QEMU exited while waiting for the agent", exitcode, ["q"], "")
