"""Managing functions through the registry: the part every server role shares.

A node (:class:`~scheduler.roles.platform.Platform`) also acts on its own pool at once
when a function changes; a gateway (:class:`~scheduler.roles.cluster.Cluster`) holds
no VMs and leaves that to the nodes, which hear of every change by the
registry's notification. Both answer ``describe`` with the VMs they can see.
"""

from __future__ import annotations

import builtins
import dataclasses
import uuid

from scheduler.asyncq.callback import check_callback
from scheduler.asyncq.queue import AsyncCall, AsyncQueue, Limits
from scheduler.errors import AccessDenied
from scheduler.model import (
    FunctionConfig,
    FunctionInfo,
    FunctionsPage,
    FunctionVersion,
    InvocationRecord,
    InvokeRequest,
)
from scheduler.pool.status import FunctionVMs
from scheduler.registry.registry import PAGE_DEFAULT, Registry
from scheduler.roles.nodewire import encode_invoke
from scheduler.settings import AsyncSettings


@dataclasses.dataclass(frozen=True)
class FunctionDescription:
    info: FunctionInfo
    versions: list[FunctionVersion]
    vms: tuple[FunctionVMs, ...]  # its versions' VMs (on this node, or across the cluster)


class Control:
    """Deploy, roll back, delete, list and describe functions; read their records."""

    def __init__(
        self, registry: Registry, node_id: str, async_settings: AsyncSettings | None = None
    ) -> None:
        self.registry = registry
        self.node_id = node_id  # this server's id (a node's, or a gateway's)
        self.async_settings = settings = async_settings or AsyncSettings()
        self.queue = AsyncQueue(
            registry.client,
            Limits(settings.max_attempts, settings.max_event_age_s, settings.result_ttl_s),
        )

    async def deploy(
        self,
        name: str,
        module: bytes,
        config: FunctionConfig,
        files_tar: bytes | None = None,
        secrets: dict[str, str] | None = None,
    ) -> FunctionVersion:
        fv = await self.registry.deploy(name, module, config, files_tar, secrets)
        await self.changed(name, fv)
        return fv

    async def rollback(self, name: str, to: int | None = None) -> FunctionVersion:
        fv = await self.registry.rollback(name, to)
        await self.changed(name, fv)
        return fv

    async def delete(self, name: str) -> None:
        await self.registry.delete(name)
        await self.changed(name, None)

    async def describe(self, name: str) -> FunctionDescription:
        info = await self.registry.get(name)
        versions = await self.registry.versions(name, list(info.versions))
        return FunctionDescription(info, versions, self.vms_of(name))

    async def list(self, after: str = "", limit: int = PAGE_DEFAULT) -> FunctionsPage:
        return await self.registry.page(after, limit)

    async def recent_invocations(self, name: str, limit: int) -> builtins.list[InvocationRecord]:
        await self.registry.get(name)  # FunctionNotFound for unknown functions
        return await self.registry.recent_invocations(name, limit)

    async def invocation(self, invocation_id: str) -> InvocationRecord:
        return await self.registry.invocation(invocation_id)

    # -- async calls ----------------------------------------------------------------------
    async def enqueue(
        self, name: str, request: InvokeRequest, callback_url: str | None = None
    ) -> str:
        """Accept a call for the queue once its function is known to exist; its id."""
        fv = await self.registry.current(name)  # FunctionNotFound: 404 now, not later
        if not fv.config.public and not request.authorized:
            raise AccessDenied(name)
        if callback_url is not None:
            check_callback(callback_url, self.async_settings.allowed_callback_hosts)
        call_id = uuid.uuid4().hex
        await self.queue.enqueue(
            call_id,
            name,
            encode_invoke(request),
            callback_url=callback_url,
            public=fv.config.public,
        )
        return call_id

    async def async_call(self, call_id: str) -> AsyncCall | None:
        return await self.queue.get(call_id)

    async def dead_letters(self, limit: int) -> builtins.list[AsyncCall]:
        return await self.queue.dead_letters(limit)

    async def retry_dead(self, call_id: str) -> AsyncCall:
        return await self.queue.requeue(call_id)

    async def changed(self, name: str, current: FunctionVersion | None) -> None:
        """This server changed ``name`` (None: deleted); the others hear it from Redis."""

    def vms_of(self, name: str) -> tuple[FunctionVMs, ...]:
        return ()
