"""One node, composed: Redis (embedded or given), guest image, accelerator, VM factory, pool,
platform and heartbeat, started in order and stopped in reverse on every way out.

The HTTP layer receives the node's :class:`~scheduler.roles.platform.Platform` ready-made
(``unifaas up`` serves the gateway app on top of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable
from types import TracebackType

from scheduler.pool.pool import Pool
from scheduler.pool.sandbox import HostConfinement, MicroVMFactory
from scheduler.registry.registry import Registry
from scheduler.roles.heartbeat import Heartbeat
from scheduler.roles.platform import Platform
from scheduler.settings import NodeSettings, PoolSettings
from scheduler.state.redis_server import EmbeddedRedis, connect
from unikernel.accel import resolve_accel
from unikernel.confine import probe as probe_confinement
from unikernel.image import guest_image
from unikernel.settings import VMSettings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    log.info("%s", message)


def describe(c: HostConfinement) -> str:
    """One line for the start-up log: what is on, and what the host could not do."""
    on = [
        f"seccomp ({c.seccomp})" if c.seccomp else "",
        f"user {c.user}" if c.user else "",
        "chroot" if c.chroot else "",
        f"cgroup {c.cgroup} (memory {c.memory_limit_mib} MiB, pids {c.pids_max})"
        if c.cgroup
        else "",
    ]
    text = ", ".join(part for part in on if part) or "none"
    if c.not_applied:
        text += "; not applied: " + "; ".join(c.not_applied)
    return text


class Node:
    """An async context manager: entering starts the node, leaving stops all it started."""

    def __init__(
        self,
        settings: NodeSettings,
        pool_settings: PoolSettings,
        vm_settings: VMSettings | None = None,
        *,
        url: str,
        progress: Progress = _quiet,
    ) -> None:
        self.settings = settings
        self.pool_settings = pool_settings
        self.vm_settings = vm_settings or VMSettings()
        self.url = url  # where this node's gateway is reached (advertised in its heartbeat)
        self.progress = progress
        self.host = socket.gethostname()
        self.id = f"{self.host}-{uuid.uuid4().hex[:6]}"
        self._stack = contextlib.AsyncExitStack()
        self._platform: Platform | None = None
        self.heartbeat: Heartbeat | None = None
        self.embedded_redis: EmbeddedRedis | None = None  # when no Redis URL was given

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            raise RuntimeError("the node is not started")
        return self._platform

    async def __aenter__(self) -> Node:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        stack, settings = self._stack, self.settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        url = settings.redis_url
        if url is None:
            embedded = await stack.enter_async_context(EmbeddedRedis(settings.state_dir))
            self.embedded_redis, url = embedded, embedded.url
            self.progress(f"redis: private redis-server, data in {settings.state_dir}")
        redis = await connect(url)
        stack.push_async_callback(redis.aclose)
        image = await asyncio.to_thread(guest_image, self.vm_settings, self.progress)
        accel = await resolve_accel(self.vm_settings, image)
        confinement = await probe_confinement(self.vm_settings)
        factory = MicroVMFactory(image, self.vm_settings, accel, confinement)
        pool = Pool(factory, self.pool_settings)
        memory = pool.memory
        self.progress(
            f"microVMs: {accel}, up to {pool.max_vms} on this node"
            + (
                f" while memory allows ({memory.available_mib()} MiB available, "
                f"{memory.reserve_mib} MiB kept for the host)"
                if memory is not None
                else ""
            )
        )
        self.progress(f"confinement: {describe(pool.host.confinement)}")
        self._platform = platform = Platform(
            Registry(redis), pool, self.id, autoscale=self.settings.autoscale
        )
        stack.push_async_callback(platform.close)
        await pool.start()
        await platform.start()
        await platform.warm_up()
        self.heartbeat = await stack.enter_async_context(
            Heartbeat(platform, self.url, settings.heartbeat_s)
        )
