"""One node's warm pool of sandboxes: reserve a slot, boot and load, run, release, reclaim.

:func:`scheduler.pool.placement.place` decides where a call's slot comes from; every
change of a VM's state is an event of :class:`scheduler.pool.vmrecord.VMRecord`. This
module applies those decisions: it boots, loads and stops sandboxes, queues calls
no slot is free for, and keeps the generic idle VMs topped up.

Placement is synchronous (``_place``, ``_dispatch``): look and reserve with no
``await`` in between, the pool's critical section on the single event loop.
Boots, loads and invocations happen outside it, on a slot reserved beforehand.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from scheduler.errors import CapacityExhausted, PoolClosed, SandboxLost
from scheduler.hostcalls.session import HostSession
from scheduler.model import ArtifactLoader, FunctionRef, FunctionVersion, StartKind
from scheduler.pool import placement
from scheduler.pool.bootgate import BootGate, Priority, speculative
from scheduler.pool.booting import Booter
from scheduler.pool.capacity import host_memory, read_meminfo
from scheduler.pool.hangcheck import HealthCheck
from scheduler.pool.placement import Decision, Step, host_memory_mib
from scheduler.pool.retry import Attempt, with_retries
from scheduler.pool.sandbox import SandboxFactory, translated
from scheduler.pool.status import PoolStatus, Ran, summarize
from scheduler.pool.templates import TemplateAsks
from scheduler.pool.upkeep import KeepAlive, periodic
from scheduler.pool.vmrecord import Grant, VMRecord, VMState
from scheduler.pool.waitqueue import WaitQueue
from scheduler.settings import PoolSettings
from wasm_runtime.errors import UnifaasError
from wasm_runtime.types import Invocation

__all__ = ["ArtifactLoader", "Pool", "Ran"]

log = logging.getLogger(__name__)

# Starting guess of a call's duration, used for Retry-After before any call ended.
INITIAL_CALL_ESTIMATE_S = 0.1


class Pool:
    def __init__(
        self,
        factory: SandboxFactory,
        settings: PoolSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        meminfo: Callable[[], str] = read_meminfo,
    ) -> None:
        self.factory = factory
        self.settings = s = settings or PoolSettings()
        self.host = host = factory.host_limits()
        self.max_vms = s.max_vms  # fewer while memory holds fewer (_vm_limit)
        self.memory = host_memory(host.vm_ceiling_mib, s.memory_reserve_mib, meminfo)
        self.memory_budget_mib = host.memory_budget_mib
        self._clock = clock
        self._vms: dict[int, VMRecord] = {}
        self._ids = itertools.count(1)
        self._queue: WaitQueue[Grant] = WaitQueue()
        # name -> its current version (None once deleted); others are retired: drain, no min_warm
        self._current: dict[str, int | None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reclaimer: asyncio.Task[None] | None = None
        self._closed = False
        self._close_done = asyncio.Event()
        self._topup_after = 0.0  # no generic boots before this (back-off after a failure)
        self._call_estimate_s = INITIAL_CALL_ESTIMATE_S
        self._boot_gate = BootGate(s.boot_concurrency, s.speculative_boot_concurrency)
        self._health = HealthCheck(
            self._vms.values,
            self._hung,
            self._spawn,
            interval_s=s.health_interval_s,
            timeout_s=s.ping_timeout_s,
            doubt_after_s=s.doubt_after_s,
        )
        self._templates = TemplateAsks(factory, self._boot_gate, self._spawn)
        self.counters: collections.Counter[str] = collections.Counter()
        self._loaders: dict[FunctionRef, ArtifactLoader] = {}
        self._ahead: set[FunctionRef] = set()  # versions with a VM started for queued calls
        self._keepalive = KeepAlive(
            self._vms.values, self._discard, self._retired, self.memory, self.counters
        )
        self._keepalive.keep_min_warm(self.ensure_min_warm, self._spawn)
        self._boots = Booter(
            factory,
            self._boot_gate,
            self.counters,
            vms=self._vms.values,
            discard=self._discard,
            closed=lambda: self._closed,
            clock=clock,
        )
        self.starts: dict[StartKind, int] = dict.fromkeys(StartKind, 0)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Boot the generic idle VMs (in the background) and start the reclaim loop."""
        if self._closed:
            raise PoolClosed()
        self._top_up()
        if self._reclaimer is None:
            every = self.settings.reclaim_interval_s  # close() waits for _tasks
            self._reclaimer = self._spawn(periodic(every, self._housekeeping, "pool reclaim"))

    async def close(self) -> None:
        """Stop every VM (booting ones included) and the loops. Idempotent."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        self._templates.close()
        try:
            if self._reclaimer is not None:
                self._reclaimer.cancel()
            self._queue.fail_all(PoolClosed())
            for vm in list(self._vms.values()):
                self._discard(vm)
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self.factory.close()
        finally:
            self._close_done.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- invocation -----------------------------------------------------------
    async def invoke(
        self,
        fv: FunctionVersion,
        load_artifacts: ArtifactLoader,
        invocation: Invocation,
        session: HostSession | None = None,
    ) -> Ran:
        """Run one call on a VM of ``fv`` (warm, pre-warmed, cold or queued), its hostcalls
        to ``session``; a call whose VM is lost runs again as :mod:`scheduler.pool.retry` says.
        A VM failing it is SandboxLost or SandboxUnavailable (unikernel's errors stay in)."""

        self._loaders[fv.ref] = load_artifacts  # for VMs started ahead of its queued calls

        def retrying(err: SandboxLost, retries: int) -> None:
            self.counters["retries"] += 1
            log.warning("%s: VM lost during a call (%s), run again (%d)", fv.key, err, retries)

        return await with_retries(
            lambda attempt: self._invoke_once(fv, load_artifacts, invocation, session, attempt),
            wait_s=self.settings.queue_timeout_s,
            run_s=fv.config.timeout_s,
            max_retries=self.settings.max_retries,
            made_effect=lambda: session is not None and session.made_effect,
            clock=self._clock,
            retrying=retrying,
        )

    async def _invoke_once(
        self,
        fv: FunctionVersion,
        load_artifacts: ArtifactLoader,
        invocation: Invocation,
        session: HostSession | None,
        attempt: Attempt,
    ) -> Ran:
        with translated():
            grant = await self._acquire(fv, attempt.wait_s, probe=attempt.retries > 0)
            vm = grant.vm
            self.starts[grant.kind] += 1
            try:
                await self._prepare(grant, fv, load_artifacts)
                sandbox = vm.sandbox
                assert sandbox is not None
                started = self._clock()
                if session is not None:
                    session.running()
                try:
                    with translated():
                        result = await sandbox.invoke(fv.key, invocation, session)
                except SandboxLost:
                    self._discard(vm, died=True)
                    raise
                if not sandbox.alive:
                    self._discard(vm, died=True)
                vm.answered()
                elapsed = self._clock() - started
                self._call_estimate_s = 0.8 * self._call_estimate_s + 0.2 * elapsed
                return Ran(result, grant.kind, vm_ms=elapsed * 1000)
            finally:
                self._release(vm)

    async def ensure_min_warm(
        self, fv: FunctionVersion, load_artifacts: ArtifactLoader, count: int | None = None
    ) -> None:
        """Bring ``fv``'s VMs up to ``count`` (default its min_warm; the autoscaler asks for
        more), generic VMs first, then boots, never evicting and never past its max_vms."""
        if self._closed or self._retired(fv):
            return
        if count is None:  # kept from now on: replaced when they die or could not start
            self._keepalive.want(fv, load_artifacts)
        want = fv.config.min_warm if count is None else count
        missing = want - placement.count_of(self._vms.values(), fv)
        grants: list[Grant] = []
        for _ in range(missing):
            grant = self._place(fv, for_call=False)
            if grant is None:
                break
            grants.append(grant)

        async def warm(grant: Grant) -> None:
            try:
                await self._prepare(grant, fv, load_artifacts, speculative)
            finally:
                self._release(grant.vm)

        with translated():
            results = await asyncio.gather(*map(warm, grants), return_exceptions=True)
            for err in (res for res in results if isinstance(res, BaseException)):
                raise err

    async def _prepare(
        self,
        grant: Grant,
        fv: FunctionVersion,
        load_artifacts: ArtifactLoader,
        priority: Priority | None = None,
    ) -> None:
        """Boot (cold) and load (cold, pre-warmed) the granted VM; on failure it is stopped."""
        if grant.kind is StartKind.WARM:
            return
        if grant.claimed:
            self._top_up()  # a generic VM was consumed
            await self._boots.claimed(grant.vm)
        elif grant.kind is StartKind.COLD:
            await self._boots.boot(grant.vm, grant.victim_stop, priority)
        else:
            self._top_up()  # a generic VM was consumed
        await self._load(grant.vm, fv, load_artifacts)

    async def _load(
        self, vm: VMRecord, fv: FunctionVersion, load_artifacts: ArtifactLoader
    ) -> None:
        try:
            sandbox = vm.sandbox
            assert sandbox is not None
            budget, ceiling = self.memory_budget_mib, self.host.confinement.memory_limit_mib
            if budget is not None and ceiling is not None:
                sandbox.limit_memory(host_memory_mib(fv, budget, ceiling) * 1024 * 1024)
            if sandbox.preloaded != fv.key:
                artifact, files = await load_artifacts()
                await sandbox.load(fv.key, artifact, files=files)
                if not self._retired(fv):
                    self._templates.loaded(fv, artifact, files)
            if vm.gone:
                raise self._boots.removed("VM removed while loading")
            vm.loaded(self._clock())
        except BaseException:
            self._discard(vm)
            raise
        self._dispatch()  # its other slots can take queued calls now

    # -- placement (synchronous: look and reserve without awaiting) ------------
    async def _acquire(self, fv: FunctionVersion, wait_s: float, *, probe: bool = False) -> Grant:
        """A slot for a call of ``fv`` within ``wait_s``; with ``probe`` (a call running
        again), only on a VM that answers a ping now, or on a new one."""
        while True:
            grant = await self._acquire_any(fv, wait_s)
            if not probe or grant.kind is StartKind.COLD or await self._health.answers(grant.vm):
                return grant
            self._hand_back(grant)  # doubted now (or gone): placement passes it by

    async def _acquire_any(self, fv: FunctionVersion, wait_s: float) -> Grant:
        if self._closed:
            raise PoolClosed()
        grant = self._place(fv)
        if grant is not None:
            return grant
        if len(self._queue) >= self.settings.queue_max:
            raise CapacityExhausted(
                f"no VM for {fv.key}: node full and {len(self._queue)} calls already queued",
                self._retry_after_s(),
            )
        waiter = self._queue.join(fv)
        try:
            grant = await self._queue.wait(waiter, wait_s)
        except BaseException:
            self._hand_back(self._queue.leave(waiter))
            raise
        if grant is None:
            self._hand_back(self._queue.leave(waiter))
            raise CapacityExhausted(
                f"no VM for {fv.key} within {wait_s:g}s",
                self._retry_after_s(),
            )
        return grant

    def _hand_back(self, grant: Grant | None) -> None:
        """Undo a grant a call that gave up got meanwhile (if it got one)."""
        if grant is None:
            return
        vm = grant.vm
        if grant.kind is StartKind.PREWARMED and vm.state is VMState.LOADING:
            vm.unclaim()  # never loaded: still generic
            self._dispatch()
            return
        if grant.kind is not StartKind.WARM:
            self._discard(vm)
        self._release(vm)

    def _place(self, fv: FunctionVersion, *, for_call: bool = True) -> Grant | None:
        """Reserve the slot :func:`placement.place` finds for ``fv``, if any. A call of a
        version whose VMs are all busy does not wait on a VM started for it alone: one is
        started (one at a time) and the call queues, taking that VM or the first slot to
        free, whichever comes first (a start costs what hundreds of calls do under TCG)."""
        self._drop_dead()
        vms = list(self._vms.values())
        decision = placement.place(
            vms,
            fv,
            vm_limit=self._vm_limit,
            memory_budget_mib=self.memory_budget_mib,
            now=self._clock(),
            for_call=for_call,
        )
        if decision is None:
            return None
        loader = self._loaders.get(fv.ref) if for_call and decision.step is not Step.WARM else None
        # Counted only past a warm slot: a warm call's placement scans the VMs once, not thrice.
        bound = placement.bound_count_of(vms, fv) if loader is not None else 0
        if loader is not None and bound:
            if placement.count_of(vms, fv) == bound and fv.ref not in self._ahead:
                self._ahead.add(fv.ref)  # one at a time: none is starting now
                self._spawn(self._start_ahead(self._reserve(decision, fv), fv, loader))
            return None
        return self._reserve(decision, fv)

    async def _start_ahead(self, grant: Grant, fv: FunctionVersion, loader: ArtifactLoader) -> None:
        try:
            await self._prepare(grant, fv, loader)
        except UnifaasError as err:
            log.warning("%s: a VM started for queued calls failed: %s", fv.key, err)
        finally:
            self._ahead.discard(fv.ref)
            self._release(grant.vm)

    def _reserve(self, decision: Decision, fv: FunctionVersion) -> Grant:
        step, vm = decision.step, decision.vm
        if step is Step.WARM and vm is not None:
            vm.reserve()
            return Grant(vm, StartKind.WARM)
        if step in (Step.PREWARMED, Step.CLAIM_BOOTING) and vm is not None:
            vm.claim(fv)
            self._boot_gate.reranked()  # a boot it waits on is no longer speculative
            return Grant(vm, step.start, claimed=step is Step.CLAIM_BOOTING)
        stop = None
        if step is Step.EVICT_AND_BOOT and decision.victim is not None:
            self.counters["evictions"] += 1
            stop = self._discard(decision.victim)
        return Grant(self._new_vm(fv), StartKind.COLD, stop)

    def _vm_limit(self) -> int:
        memory, vms = self.memory, self._vms.values()
        return self.max_vms if memory is None else memory.vm_limit(self.max_vms, vms)

    def _new_vm(self, fv: FunctionVersion | None) -> VMRecord:
        vm = VMRecord.booting(next(self._ids), fv)
        self._vms[vm.id] = vm
        return vm

    def _retired(self, fv: FunctionVersion) -> bool:
        return fv.name in self._current and self._current[fv.name] != fv.version

    def _release(self, vm: VMRecord) -> None:
        """A call (or a warm-up) is done with its slot."""
        if not vm.gone:
            vm.release(self._clock())
            retiring = vm.state is VMState.DRAINING or (vm.fv is not None and self._retired(vm.fv))
            if retiring and vm.in_flight <= 0:
                self._discard(vm)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand freed capacity to queued calls, oldest first; then top up generic VMs."""
        if self._closed:
            return
        self._queue.serve(self._place)
        self._top_up()

    def _top_up(self) -> None:
        if self._closed or self._clock() < self._topup_after:
            return
        generic = placement.generic_count(self._vms.values())
        while generic < self.settings.idle_target and len(self._vms) < self._vm_limit():
            self._spawn(self._boot_generic(self._new_vm(None)))
            generic += 1

    async def _boot_generic(self, vm: VMRecord) -> None:
        try:
            with translated():
                await self._boots.boot(vm)
        except (PoolClosed, SandboxLost):
            return
        except Exception:
            log.exception("booting a generic VM failed")
            self._topup_after = self._clock() + self.settings.reclaim_interval_s
        self._dispatch()
        sandbox = vm.sandbox
        if vm.state is VMState.IDLE and sandbox is not None:
            # Off every call's path: a call that takes the VM meanwhile just
            # runs beside the warm-up. A VM that fails it is found dead later.
            try:
                await sandbox.warm_up()
            except Exception as err:
                log.warning("warming up VM %d failed: %s", vm.id, err)

    # -- removal --------------------------------------------------------------
    def _discard(self, vm: VMRecord, *, died: bool = False) -> asyncio.Task[None]:
        """Take the VM out of the pool now; it is stopped in the background. Idempotent."""
        if vm.stop_task is not None:
            return vm.stop_task
        if died:
            self.counters["deaths"] += 1
        vm.remove()
        self._vms.pop(vm.id, None)
        vm.stop_task = self._spawn(vm.stop_sandbox())
        return vm.stop_task

    def _drop_dead(self) -> None:
        for vm in list(self._vms.values()):
            if vm.sandbox is not None and vm.in_flight == 0 and not vm.sandbox.alive:
                self._discard(vm, died=True)

    async def drain(self, name: str, keep: FunctionRef | None = None) -> None:
        """Retire ``name``'s VMs except those of ``keep``: no new calls, stop when idle."""
        self._current[name] = keep.version if keep is not None else None
        self._templates.retire(name, keep)
        self._keepalive.retire(name, keep)
        for ref in [ref for ref in self._loaders if ref.name == name and ref != keep]:
            del self._loaders[ref]
        idle, busy = placement.retiring(self._vms.values(), name, keep)
        for vm in busy:
            vm.drain()
        await asyncio.gather(*map(self._discard, idle))
        self._dispatch()

    # -- keep-alive -----------------------------------------------------------
    def _housekeeping(self) -> None:
        self.reclaim()
        self._health.tick(self._clock())

    def _hung(self, vm: VMRecord) -> None:
        self.counters["hung"] += 1
        self._discard(vm, died=True)
        self._dispatch()  # room for a replacement (and queued calls)

    def reclaim(self) -> int:
        """Stop bound VMs idle past their keep-alive (keeping min_warm), and idle VMs while
        memory is short; returns how many went for their keep-alive."""
        self._drop_dead()
        stopped = self._keepalive.tick(self._clock())
        self._dispatch()
        return stopped

    # -- status ---------------------------------------------------------------
    def _retry_after_s(self) -> int:
        vms, queued, wait_s = self._vms.values(), len(self._queue), self.settings.queue_timeout_s
        return placement.retry_after_s(
            vms, queued, self._call_estimate_s, wait_s, self.memory_budget_mib
        )

    def status(self) -> PoolStatus:
        """VMs by state, per version, and the pool's totals."""
        return summarize(
            list(self._vms.values()),
            max_vms=self.max_vms,
            memory=self.memory.status(self._vms.values()) if self.memory else None,
            queue_depth=len(self._queue),
            boots_waiting=self._boot_gate.waiting,
            templates=self._templates.counts(),
            counters={**self.counters, "doubts": self._health.doubts},
            starts=self.starts,
            closed=self._closed,
        )
