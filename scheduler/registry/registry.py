"""The function registry: deploy (check, precompile, store), versions, rollback, records, nodes.

It turns the plain data of :mod:`scheduler.state.store` into the models of
:mod:`scheduler.model`; what a deploy brings is checked first by
:mod:`scheduler.registry.validation`.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import wasmtime

from scheduler.errors import FunctionNotFound, InvocationNotFound, StateStoreError
from scheduler.model import (
    FunctionConfig,
    FunctionInfo,
    FunctionsPage,
    FunctionVersion,
    InvocationRecord,
    NodeRecord,
    StartKind,
)
from scheduler.registry.validation import (
    validate_config,
    validate_files_tar,
    validate_kind,
    validate_name,
    validate_secrets,
)
from scheduler.state.store import StateStore, sha256_hex
from wasm_runtime.compiler import COMPONENT_COMPILE_LIMITS, CompileLimits, precompile_isolated
from wasm_runtime.engine import (
    ComponentInfo,
    check_component,
    default_engine,
    deserialize_component,
    inspect,
    is_component,
)
from wasm_runtime.shape import check_memory_cap
from wasm_runtime.types import flat_dict, known_fields


@functools.cache
def engine_compat_tag() -> str:
    """Identifies which artifacts this host's engine produces and accepts.

    An artifact's header encodes the wasmtime version and the engine settings,
    so the artifact of an empty module, hashed, changes exactly when artifacts
    stop being interchangeable (precompilation is deterministic).
    """
    empty = wasmtime.Module(default_engine(), b"\0asm\x01\0\0\0").serialize()
    return "wt-" + sha256_hex(bytes(empty))[:16]


# Functions per page of a listing: by default, and at most.
PAGE_DEFAULT, PAGE_MAX = 100, 1000


def _info_from(name: str, meta: dict[str, str], versions: list[int]) -> FunctionInfo:
    return FunctionInfo(
        name=name,
        current=int(meta["current"]),
        versions=versions,
        created_at=float(meta["created_at"]),
        updated_at=float(meta["updated_at"]),
    )


def _version_from(name: str, version: int, data: dict[str, Any]) -> FunctionVersion:
    return FunctionVersion(
        name=name,
        version=version,
        module_sha256=data["module_sha256"],
        artifact_sha256=data["artifact_sha256"],
        files_sha256=data.get("files_sha256"),
        config=FunctionConfig.from_dict(data["config"]),
        created_at=float(data["created_at"]),
        secret_names=tuple(data.get("secret_names", ())),
        granted_imports=tuple(data.get("granted_imports", ())),
        denied_imports=tuple(data.get("denied_imports", ())),
        artifact_bytes=int(data.get("artifact_bytes", 0)),
    )


def _component_info(artifact: bytes) -> ComponentInfo:
    """What a component imports, read from its artifact (no compiling: 0.1 s for 40 MB)."""
    engine = default_engine()
    return check_component(engine, deserialize_component(engine, artifact))


def _record_from(data: dict[str, Any]) -> InvocationRecord:
    values = known_fields(InvocationRecord, data)
    values["start"] = StartKind(values["start"])
    return InvocationRecord(**values)


class Registry:
    """Deployed functions and their versions, invocation records and node heartbeats."""

    def __init__(self, client: aioredis.Redis, compile_limits: CompileLimits | None = None) -> None:
        self.client = client  # for the other stores over the same Redis
        self.state = StateStore(client)
        self.compile_limits = compile_limits or CompileLimits()
        self.component_compile_limits = COMPONENT_COMPILE_LIMITS

    # deploy

    async def deploy(
        self,
        name: str,
        module: bytes,
        config: FunctionConfig,
        files_tar: bytes | None = None,
        secrets: dict[str, str] | None = None,
    ) -> FunctionVersion:
        """Validate everything, store the blobs and make a new current version.

        ``secrets`` replace the current version's; None keeps them (a deploy of new code
        need not repeat them), {} drops them.

        Raises InvalidConfig (name, config, files) or InvalidModule (the wasm).
        Compiling runs in a child process under time, CPU and memory limits
        (``wasm_runtime.compiler``); a module already compiled by an engine with
        the same compat tag is not compiled again.
        """
        validate_name(name)
        validate_config(config)
        if secrets is None:
            secrets = await self._current_secrets(name)
        validate_secrets(secrets, config)
        if files_tar is not None:
            await asyncio.to_thread(validate_files_tar, files_tar)
        component = is_component(module)
        config = validate_kind(config, component=component)
        if not component:
            # What the module declares is checked on every deploy, before any compiling
            # and also when its artifact is cached: the cap is the deploy's.
            shape = inspect(module)
            check_memory_cap(shape, config.limits.memory_bytes)
        module_sha = sha256_hex(module)
        limits = self.component_compile_limits if component else self.compile_limits
        artifact_sha, artifact_bytes = await self._artifact_for(module, module_sha, limits)
        granted: list[str] = []
        denied: list[str] = []
        if component:
            info = await asyncio.to_thread(_component_info, await self.blob(artifact_sha))
            granted, denied = list(info.granted), list(info.denied)
        await self.state.put_blob(module)
        files_sha = await self.state.put_blob(files_tar) if files_tar is not None else None
        now = time.time()
        record = {
            "module_sha256": module_sha,
            "artifact_sha256": artifact_sha,
            "artifact_bytes": artifact_bytes,
            "files_sha256": files_sha,
            "config": config.to_dict(),
            "created_at": now,
            "secret_names": sorted(secrets),
            "granted_imports": granted,
            "denied_imports": denied,
        }
        version = await self.state.create_version(name, record, now, secrets)
        return _version_from(name, version, record)

    async def _current_secrets(self, name: str) -> dict[str, str]:
        try:
            current = await self.current(name)
        except FunctionNotFound:
            return {}
        return await self.secrets(current)

    async def secrets(self, fv: FunctionVersion) -> dict[str, str]:
        """A version's secrets (read only for its calls' environment)."""
        if not fv.secret_names:
            return {}
        return await self.state.get_secrets(fv.name, fv.version)

    async def _artifact_for(
        self, module: bytes, module_sha: str, limits: CompileLimits
    ) -> tuple[str, int]:
        """The artifact's sha256 and size, compiled now or before by the same engine."""
        tag = await asyncio.to_thread(engine_compat_tag)
        cached = await self.state.get_artifact_sha(tag, module_sha)
        if cached is not None and (size := await self.state.blob_size(cached)):
            return cached, size
        artifact = await precompile_isolated(module, limits)  # InvalidModule
        artifact_sha = await self.state.put_blob(artifact)
        await self.state.set_artifact_sha(tag, module_sha, artifact_sha)
        return artifact_sha, len(artifact)

    # reads

    async def get(self, name: str) -> FunctionInfo:
        found = await self.state.get_function(name)
        if found is None:
            raise FunctionNotFound(name)
        return _info_from(name, *found)

    async def version(self, name: str, v: int) -> FunctionVersion:
        data = await self.state.get_version(name, v)
        if data is None:
            await self.get(name)  # FunctionNotFound(name) when the function itself is unknown
            raise FunctionNotFound(name, v)
        return _version_from(name, v, data)

    async def versions(self, name: str, vs: list[int]) -> list[FunctionVersion]:
        """Versions ``vs`` of ``name`` (one round trip: describe's cost does not grow with
        round trips per version)."""
        found = await self.state.get_versions(name, vs)
        missing = [v for v, data in zip(vs, found, strict=True) if data is None]
        if missing:
            raise FunctionNotFound(name, missing[0])
        return [_version_from(name, v, d) for v, d in zip(vs, found, strict=True) if d is not None]

    async def current(self, name: str) -> FunctionVersion:
        info = await self.get(name)
        return await self.version(name, info.current)

    async def page(self, after: str = "", limit: int = PAGE_DEFAULT) -> FunctionsPage:
        """Up to ``limit`` functions named after ``after``, by name, and where the next
        page starts; a page costs the same however many functions there are."""
        rows, next_after = await self.state.function_page(after, limit)
        return FunctionsPage([_info_from(*row) for row in rows], next_after)

    async def list(self) -> builtins.list[FunctionInfo]:
        """All functions, by name, page by page; ones deleted while listing are left out."""
        infos: builtins.list[FunctionInfo] = []
        after: str | None = ""
        while after is not None:
            page = await self.page(after, PAGE_MAX)
            infos += page.functions
            after = page.next_after
        return infos

    async def blob(self, sha: str) -> bytes:
        data = await self.state.get_blob(sha)
        if data is None:
            raise StateStoreError(f"blob {sha} is missing from the state store")
        return data

    async def artifacts(
        self, fv: FunctionVersion, blob: Callable[[str], Awaitable[bytes]] | None = None
    ) -> tuple[bytes, bytes | None]:
        """The precompiled artifact and the files tar (None when it has none) of a version,
        read with ``blob`` (default: from the state store)."""
        get = blob or self.blob
        artifact = await get(fv.artifact_sha256)
        files = await get(fv.files_sha256) if fv.files_sha256 is not None else None
        return artifact, files

    # changes

    async def delete(self, name: str) -> None:
        """Remove the function and all its versions (blobs stay; see StateStore)."""
        if not await self.state.delete_function(name):
            raise FunctionNotFound(name)

    async def rollback(self, name: str, to: int | None = None) -> FunctionVersion:
        """Make version ``to`` current (None: the version before the current one)."""
        version = await self.state.rollback(name, to, time.time())
        return await self.version(name, version)

    # invocations

    async def record_invocation(self, rec: InvocationRecord) -> None:
        await self.record_invocations([rec])

    async def record_invocations(self, recs: builtins.list[InvocationRecord]) -> None:
        """Store a batch of records in one round trip."""
        batch = []
        for rec in recs:
            data = flat_dict(rec)
            data["start"] = rec.start.value
            batch.append((rec.id, rec.function, data))
        await self.state.put_invocations(batch)

    async def invocation(self, invocation_id: str) -> InvocationRecord:
        data = await self.state.get_invocation(invocation_id)
        if data is None:
            raise InvocationNotFound(invocation_id)
        return _record_from(data)

    async def recent_invocations(
        self, name: str, limit: int = 50
    ) -> builtins.list[InvocationRecord]:
        """The latest records of a function, newest first."""
        return [_record_from(d) for d in await self.state.recent_invocations(name, limit)]

    # nodes

    async def register_node(self, node: NodeRecord, ttl_s: float) -> None:
        """Heartbeat: (re)register a node; it drops out of list_nodes ``ttl_s`` after
        beats stop."""
        await self.state.put_node(node.id, node.to_dict(), ttl_s)

    async def unregister_node(self, node_id: str) -> None:
        await self.state.remove_node(node_id)

    async def list_nodes(self) -> builtins.list[NodeRecord]:
        """Live nodes, by id."""
        nodes = await self.state.nodes()
        return [NodeRecord.from_dict({**info, "id": node_id}) for node_id, info in nodes.items()]
