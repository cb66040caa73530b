"""The small interface the pool needs of a VM, and the factory that boots real microVMs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Iterator
from typing import Protocol

from scheduler.errors import SandboxLost, SandboxUnavailable
from unikernel.accel import Accel
from unikernel.confine import Confinement, vm_memory_ceiling_mib
from unikernel.errors import VMGone, VMLaunchError
from unikernel.image import GuestImage
from unikernel.settings import VMSettings
from unikernel.snapshot import (
    Template,
    make_template,
    make_version_template,
    room_for_template,
)
from unikernel.templates import VersionTemplates
from unikernel.vm import MicroVM
from wasm_runtime.errors import ProtocolError, UnikernelError
from wasm_runtime.hostcalls import HostHandler
from wasm_runtime.replies import LoadReply
from wasm_runtime.types import Invocation, InvocationResult

log = logging.getLogger(__name__)


class Sandbox(Protocol):
    """What the pool needs of a VM (``unikernel.vm.MicroVM`` provides it)."""

    @property
    def alive(self) -> bool: ...

    @property
    def restored(self) -> bool:
        """Started as a clone of a snapshot template rather than booted."""
        ...

    @property
    def preloaded(self) -> str | None:
        """The function it started with loaded (a clone of that version's template)."""
        ...

    async def load(
        self, fn_id: str, artifact: bytes, *, files: bytes | None = None
    ) -> LoadReply: ...

    async def invoke(
        self, fn_id: str, invocation: Invocation, hostcalls: HostHandler | None = None
    ) -> InvocationResult:
        """Run a call; its hostcalls go to ``hostcalls`` (None: each is answered UNAVAILABLE)."""
        ...

    async def stop(self) -> None: ...

    async def ping(self, timeout_s: float) -> float:
        """Round trip in seconds; a VM that misses ``timeout_s`` is killed (VMGone)."""
        ...

    async def warm_up(self) -> None:
        """Make the next load and call faster (a generic VM runs this while it waits)."""

    def rss_kib(self) -> int: ...

    def private_kib(self) -> int:
        """Its private resident memory: what one more VM like it costs the host."""
        ...

    def limit_memory(self, memory_bytes: int) -> None:
        """Bound the host memory the VM may hold from now on (its cgroup; no-op without)."""


@dataclasses.dataclass(frozen=True)
class HostConfinement:
    """What confines each VM on the host side (all off: not confined)."""

    seccomp: str | None = None  # QEMU's -sandbox setting
    user: str | None = None  # whom QEMU runs as: its own ids per VM, or the one VM user
    chroot: bool = False
    cgroup: str | None = None  # "v1" or "v2"
    memory_limit_mib: int | None = None  # a new VM's cgroup memory limit
    cpu_weight: int | None = None
    pids_max: int | None = None
    not_applied: tuple[str, ...] = ()  # what the host could not do, and why


@dataclasses.dataclass(frozen=True)
class HostLimits:
    """What the host allows the pool, whatever its settings say."""

    # The most host memory one VM can hold (None: VMs are not admitted by memory).
    vm_ceiling_mib: int | None = None
    # Guest RAM one VM has for its calls' linear memory (None: not limited).
    memory_budget_mib: int | None = None
    confinement: HostConfinement = HostConfinement()


def host_confinement(confinement: Confinement) -> HostConfinement:
    tree = confinement.cgroups
    limits = tree.limits if tree is not None else None
    return HostConfinement(
        seccomp=confinement.seccomp,
        user=_user_of(confinement),
        chroot=confinement.chroot,
        cgroup=tree.version if tree is not None else None,
        memory_limit_mib=limits.memory_bytes // (1024 * 1024) if limits else None,
        cpu_weight=limits.cpu_weight if limits else None,
        pids_max=limits.pids_max if limits else None,
        not_applied=confinement.not_applied,
    )


def _user_of(confinement: Confinement) -> str | None:
    """Whom QEMU runs as: each VM its own ids (from a range), or the one VM user."""
    if confinement.ids is not None:
        return f"a uid and gid per VM from {confinement.ids.ids}"
    return confinement.user.name if confinement.user is not None else None


class SandboxFactory(Protocol):
    async def boot(self, fn_id: str | None = None) -> Sandbox:
        """A new VM; for ``fn_id``, one with it loaded when its template is held."""
        ...

    def host_limits(self) -> HostLimits: ...

    def wants_template(self, fn_id: str) -> bool:
        """Whether a template of ``fn_id`` is worth making (none held, none being made)."""
        ...

    async def keep_template(self, fn_id: str, artifact: bytes, files: bytes | None) -> None:
        """Keep a template with ``fn_id`` loaded (failures are logged, not raised)."""

    def forget_template(self, fn_id: str) -> None: ...

    def templates_held(self) -> int: ...

    async def close(self) -> None:
        """Release what the factory keeps between boots (the pool's VMs are already gone)."""


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """The seam where unikernel's errors become the scheduler's (once, here)."""
    try:
        yield
    except VMGone as err:
        raise SandboxLost(err.message) from err
    except VMLaunchError as err:
        if err.exitcode is None or err.exitcode >= 0:
            raise SandboxUnavailable(err.message) from err
        # Killed by a signal while it started (kill -9, the OOM killer): lost like a VM
        # killed later, so a call waiting on it runs again; a guest that cannot boot
        # exits by itself or times out, and stays unavailable.
        raise SandboxLost(f"VM killed while starting (signal {-err.exitcode})") from err
    except ProtocolError as err:  # the channel or the agent is broken: as good as gone
        raise SandboxLost(f"agent channel broken: {err.message}") from err
    except UnikernelError as err:
        raise SandboxUnavailable(err.message) from err


class MicroVMFactory:
    """Starts real QEMU microVMs, named ``pool-1``, ``pool-2``, ...

    Each is a clone of a snapshot template when snapshots are on (the first
    start boots and saves the template; the others wait for it, then take
    ~0.1 s instead of a boot). A template that fails a clone (its RAM file
    deleted, its state corrupted, ...) is dropped and rebuilt in the
    background; meanwhile, and for the clone that failed, VMs are booted.
    """

    def __init__(
        self,
        image: GuestImage,
        vm_settings: VMSettings,
        accel: Accel,
        confinement: Confinement | None = None,
    ) -> None:
        self.image = image
        self.vm_settings = vm_settings
        self.accel = accel
        self.confinement = confinement or Confinement.none()
        self._numbers = itertools.count(1)
        self._template: Template | None = None
        self._template_lock = asyncio.Lock()
        self._snapshots = vm_settings.snapshots
        self._made_once = False  # the first template is waited for; later ones are not
        self._rebuild: asyncio.Task[Template | None] | None = None
        self.restore_failures = 0
        self.template_rebuilds = 0
        self.versions = VersionTemplates(vm_settings)

    def host_limits(self) -> HostLimits:
        return HostLimits(
            vm_memory_ceiling_mib(self.vm_settings),
            function_memory_budget(self.vm_settings),
            host_confinement(self.confinement),
        )

    async def boot(self, fn_id: str | None = None) -> Sandbox:
        name = f"pool-{next(self._numbers)}"
        version = self.versions.get(fn_id) if fn_id is not None else None
        if version is not None:
            try:
                return await MicroVM.restore(
                    version, self.vm_settings, name=name, confinement=self.confinement
                )
            except UnikernelError as err:
                self.restore_failures += 1
                log.warning("starting %s from the template of %s failed: %s", name, fn_id, err)
                self.versions.forget(version.loaded or "")
        template = await self._ensure_template() if not self._made_once else self._template
        if template is not None and not template.intact():
            self._drop_template(template, "its files are gone")
            template = None
        if template is not None:
            try:
                return await MicroVM.restore(
                    template, self.vm_settings, name=name, confinement=self.confinement
                )
            except UnikernelError as err:
                self.restore_failures += 1
                self._drop_template(template, f"starting {name} from it failed: {err}")
        return await MicroVM.boot(
            self.image, self.vm_settings, self.accel, name=name, confinement=self.confinement
        )

    def wants_template(self, fn_id: str) -> bool:
        return self._template is not None and self.versions.wanted(fn_id)

    async def keep_template(self, fn_id: str, artifact: bytes, files: bytes | None) -> None:
        base = self._template
        if base is None or not room_for_template(self.vm_settings):
            return

        async def prepare(vm: MicroVM) -> None:
            await vm.load(fn_id, artifact, files=files)
            await vm.warm_up()

        await self.versions.make(
            fn_id,
            lambda: make_version_template(base, self.vm_settings, fn_id, prepare, self.confinement),
        )

    def forget_template(self, fn_id: str) -> None:
        self.versions.forget(fn_id)

    def templates_held(self) -> int:
        return len(self.versions)

    def _drop_template(self, template: Template, why: str) -> None:
        """Boot VMs until a new template is made in the background."""
        if self._template is not template:
            return  # another boot dropped it already
        log.warning("snapshot template dropped (%s): booting VMs while it is rebuilt", why)
        template.remove()
        self._template = None
        if self._snapshots and (self._rebuild is None or self._rebuild.done()):
            self.template_rebuilds += 1
            self._rebuild = asyncio.create_task(self._ensure_template(), name="template-rebuild")

    async def wait_template(self) -> Template | None:
        """The template once any rebuild under way is over (None: VMs are booted)."""
        if self._rebuild is not None:
            await asyncio.wait({self._rebuild})
        return self._template

    async def _ensure_template(self) -> Template | None:
        if not self._snapshots:
            return None
        async with self._template_lock:
            if self._template is None and self._snapshots:
                if not room_for_template(self.vm_settings):
                    log.warning("no room for a snapshot template's RAM: booting every VM")
                    self._snapshots = False
                    return None
                try:
                    self._template = await make_template(
                        self.image, self.vm_settings, self.accel, self.confinement
                    )
                except UnikernelError as err:
                    log.warning("making the snapshot template failed, booting every VM: %s", err)
                    self._snapshots = False
                self._made_once = True
        return self._template

    async def close(self) -> None:
        if self._rebuild is not None:
            self._rebuild.cancel()
            await asyncio.gather(self._rebuild, return_exceptions=True)
        if self._template is not None:
            self._template.remove()
            self._template = None
        self.versions.clear()


# Guest RAM the system itself holds: the unpacked image (~38 MiB), the
# kernel (~12 MiB) and the agent (~22 MiB), rounded up.
GUEST_SYSTEM_MIB = 96


def function_memory_budget(vm_settings: VMSettings) -> int:
    """Guest RAM left for the linear memory of the calls running in one VM."""
    return max(16, vm_settings.guest_memory_mib - GUEST_SYSTEM_MIB)
