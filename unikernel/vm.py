"""The shim: one microVM = one QEMU process + its QMP control + its agent connection.

``MicroVM.boot`` returns only a VM whose agent said hello; if anything fails on
the way, whatever was started is torn down before the error propagates. A
watcher notices QEMU exiting and fails every pending call with ``VMGone``; a
call that outlives its limit plus a grace period is treated as a hung guest,
and the VM is killed (``AgentUnresponsive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from unikernel import warmup
from unikernel.confine import Confinement
from unikernel.errors import AgentUnresponsive, ConfinementError, QMPCommandError, VMGone
from unikernel.image import GuestImage
from unikernel.process import VMProcess
from unikernel.qmp import QmpControl
from unikernel.settings import VMSettings
from unikernel.shim import AgentClient
from unikernel.tsc import tcg_kernel_args
from wasm_runtime.hostcalls import HostHandler
from wasm_runtime.replies import AgentStats, LoadReply, ResumeReply
from wasm_runtime.types import Invocation, InvocationResult

if TYPE_CHECKING:
    from unikernel.snapshot import Template

QUIT_WAIT_S = 3.0
# Control calls (load, stats, ...) are quick; under TCG a first load still
# pays for translating wasmtime's code, so be generous.
CONTROL_CALL_TIMEOUT_S = 30.0


def _overrides(settings: VMSettings, accel: Literal["kvm", "tcg"]) -> dict[str, object]:
    return {
        "accel": accel,
        "machine": settings.machine,
        "memory_mib": settings.guest_memory_mib,
        "tcg_tb_size_mib": settings.tcg_tb_size_mib,
        "qemu_binary": settings.qemu_binary,
        "extra_kernel_args": settings.extra_kernel_args,
        "tsc_kernel_args": tcg_kernel_args() if accel == "tcg" else "",
    }


class MicroVM:
    def __init__(
        self,
        process: VMProcess,
        qmp: QmpControl,
        agent: AgentClient,
        settings: VMSettings,
        accel: Literal["kvm", "tcg"],
        boot_s: float,
    ) -> None:
        self.process = process
        self.qmp = qmp
        self.agent = agent
        self.settings = settings
        self.accel = accel
        self.boot_s = boot_s
        self.restored = False  # started from a snapshot rather than booted
        self.preloaded: str | None = None  # the function its template held loaded
        # The clone's clock and an RNG sample right after resuming (restored VMs only).
        self.resumed: ResumeReply | None = None
        self._stopped = False
        self._watcher = asyncio.create_task(self._watch_exit(), name=f"vm-watch-{self.pid}")

    # -- lifecycle ------------------------------------------------------------
    @classmethod
    async def boot(
        cls,
        image: GuestImage,
        settings: VMSettings,
        accel: Literal["kvm", "tcg"],
        name: str = "vm",
        *,
        memory_file: Path | None = None,
        confinement: Confinement | None = None,
    ) -> MicroVM:
        """Boot the guest and wait for the agent's hello.

        With ``memory_file``, guest RAM is that (shared) file: the VM can then
        serve as a snapshot template (``unikernel.snapshot``).
        """
        overrides = _overrides(settings, accel)
        if memory_file is not None:
            overrides.update(memory_file=memory_file, memory_shared=True)
        process = VMProcess(
            image.kernel, image.initrd, overrides, settings.run_dir, name, confinement
        )

        async def hello(qmp: QmpControl, agent: AgentClient) -> None:
            ready = asyncio.ensure_future(agent.wait_ready())
            await process.until_exit_or(ready, settings.boot_timeout_s, "the agent's hello")

        return await cls._launch(process, settings, accel, name, hello, restored=False)

    @classmethod
    async def restore(
        cls,
        template: Template,
        settings: VMSettings,
        name: str = "vm",
        *,
        confinement: Confinement | None = None,
        memory_copy: Path | None = None,
    ) -> MicroVM:
        """A clone of ``template``: its RAM mapped copy-on-write, its device state loaded.

        Ready when the agent has taken the real time and fresh entropy (its
        clock and RNG are the template's until then). With ``memory_copy`` (a
        copy of the template's RAM file), guest RAM is that file, shared: the
        clone can then be saved as a template of its own.
        """
        overrides = _overrides(settings, template.accel)
        if memory_copy is None:
            overrides.update(memory_file=template.memory_file, memory_shared=False)
        else:
            overrides.update(memory_file=memory_copy, memory_shared=True)
        overrides.update(incoming=True)
        image = template.image
        process = VMProcess(
            image.kernel, image.initrd, overrides, settings.run_dir, name, confinement
        )

        info: list[ResumeReply] = []

        async def resumed(qmp: QmpControl, agent: AgentClient) -> None:
            loaded = asyncio.ensure_future(qmp.load_snapshot(template.state_file))
            await process.until_exit_or(loaded, settings.boot_timeout_s, "the snapshot to load")
            await qmp.resume()
            agent.adopt_hello(template.hello)
            woken = asyncio.ensure_future(agent.resume(time.time_ns(), os.urandom(64)))
            info.append(
                await process.until_exit_or(woken, settings.boot_timeout_s, "the agent to resume")
            )

        vm = await cls._launch(process, settings, template.accel, name, resumed, restored=True)
        vm.resumed = info[0]
        vm.preloaded = template.loaded
        return vm

    @classmethod
    async def _launch(
        cls,
        process: VMProcess,
        settings: VMSettings,
        accel: Literal["kvm", "tcg"],
        name: str,
        until_ready: Callable[[QmpControl, AgentClient], Awaitable[None]],
        *,
        restored: bool,
    ) -> MicroVM:
        qmp = QmpControl(name)
        agent: AgentClient | None = None
        try:
            await qmp.listen(process.spec.qmp_socket)
            await process.listen()
            await process.spawn()
            accept = qmp.start_accept()
            reader, writer = await process.accept_agent()
            agent = AgentClient(reader, writer)
            await process.until_exit_or(accept, settings.boot_timeout_s, "QMP")
            await until_ready(qmp, agent)
            boot_s = time.perf_counter() - process.started_at
        except BaseException as err:
            if agent is not None:
                agent.close()
            await qmp.close()
            if isinstance(err, QMPCommandError | VMGone):
                # QEMU died during start-up and took the socket with it: report
                # the launch failure with QEMU's own words, not the socket's.
                with contextlib.suppress(TimeoutError):
                    await process.wait(QUIT_WAIT_S)
                launch_error = process.launch_error(f"QEMU failed during start-up ({err})")
                await process.close()
                raise launch_error from err
            await process.close()
            raise
        vm = cls(process, qmp, agent, settings, accel, boot_s)
        vm.restored = restored
        return vm

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return not self._stopped and self.process.returncode is None

    async def _watch_exit(self) -> None:
        code = await self.process.wait()
        self.agent.close(VMGone(f"QEMU exited with code {code}", code))

    async def stop(self) -> None:
        """Quit QEMU (QMP quit, then kill) and remove every file it used. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.agent.close(VMGone("VM stopped by the host"))
        try:
            if self.process.returncode is None:
                await asyncio.wait_for(self.qmp.quit(), QUIT_WAIT_S)
                with contextlib.suppress(TimeoutError):
                    await self.process.wait(QUIT_WAIT_S)
        except (TimeoutError, OSError):
            pass
        finally:
            await self.qmp.close()
            await self.process.close()
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def kill(self) -> None:
        """Hard-kill QEMU; the exit watcher then fails pending calls."""
        self.process.kill()

    async def __aenter__(self) -> MicroVM:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- agent calls ----------------------------------------------------------
    async def _bounded(self, coro: Any, timeout: float, what: str) -> Any:
        try:
            # Not wait_for: on 3.11 it wraps the call in a task of its own (a loop
            # iteration more on every call's way back).
            async with asyncio.timeout(timeout):
                return await coro
        except TimeoutError:
            self.kill()
            raise AgentUnresponsive(f"{what} got no answer in {timeout:.1f}s; VM killed") from None

    async def ping(self, timeout_s: float = CONTROL_CALL_TIMEOUT_S) -> float:
        """Round trip of one protocol ping, in seconds; a VM that misses ``timeout_s``
        is killed (AgentUnresponsive)."""
        started = time.perf_counter()
        await self._bounded(self.agent.ping(), timeout_s, "ping")
        return time.perf_counter() - started

    async def load(
        self, fn_id: str, artifact: bytes, *, precompiled: bool = True, files: bytes | None = None
    ) -> LoadReply:
        result: LoadReply = await self._bounded(
            self.agent.load(fn_id, artifact, precompiled=precompiled, files=files),
            CONTROL_CALL_TIMEOUT_S,
            f"load of {fn_id}",
        )
        return result

    async def invoke(
        self, fn_id: str, invocation: Invocation, hostcalls: HostHandler | None = None
    ) -> InvocationResult:
        timeout = invocation.limits.timeout_ms / 1000 + self.settings.call_grace_s
        result: InvocationResult = await self._bounded(
            self.agent.invoke(fn_id, invocation, hostcalls), timeout, f"invocation of {fn_id}"
        )
        return result

    async def warm_up(self) -> None:
        """Run a tiny call so the next real load and call find QEMU's code translated."""
        await self.load(warmup.FN_ID, await warmup.artifact())
        result = await self.invoke(warmup.FN_ID, Invocation(stdin=warmup.STDIN))
        result.raise_for_outcome()
        await self.unload(warmup.FN_ID)

    async def unload(self, fn_id: str) -> None:
        await self._bounded(self.agent.unload(fn_id), CONTROL_CALL_TIMEOUT_S, "unload")

    async def stats(self) -> AgentStats:
        stats: AgentStats = await self._bounded(self.agent.stats(), CONTROL_CALL_TIMEOUT_S, "stats")
        return stats

    def limit_memory(self, memory_bytes: int) -> None:
        """Lower (or raise) the host memory this VM may hold; no-op when it has no cgroup."""
        if self.process.cgroup is not None:
            try:
                self.process.cgroup.set_memory(memory_bytes)
            except OSError as err:  # v1 refuses a limit below what the VM already holds
                raise ConfinementError(f"cannot set the VM's memory limit: {err}") from err

    def yield_cpu(self) -> None:
        """Run behind every other VM: background work, such as making a template.

        Its cgroup's weight when it has one (a nice value would only rank it
        within its own group); else the process's nice value.
        """
        try:
            if self.process.cgroup is not None:
                self.process.cgroup.set_cpu_weight(1)
            elif self.pid is not None:
                for tid in os.listdir(f"/proc/{self.pid}/task"):  # nice is per thread
                    os.setpriority(os.PRIO_PROCESS, int(tid), 19)
        except OSError as err:
            raise ConfinementError(f"cannot lower the VM's CPU priority: {err}") from err

    def rss_kib(self, field: str = "VmRSS") -> int:
        """Resident memory of the QEMU process (0 when it is gone).

        ``field`` is a /proc status line: ``VmRSS`` (all resident pages) or
        ``RssAnon`` (private memory, leaving out the kernel and initramfs file
        pages every VM maps from the same page cache).
        """
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(f"{field}:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def private_kib(self) -> int:
        """Private resident memory (``RssAnon``): what one more VM like it costs the host."""
        return self.rss_kib("RssAnon")

    # -- QMP ------------------------------------------------------------------
    async def status(self) -> str:
        return await self.qmp.status()

    async def pause(self) -> None:
        await self.qmp.pause()

    async def resume(self) -> None:
        await self.qmp.resume()
