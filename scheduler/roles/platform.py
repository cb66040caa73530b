"""The platform facade the gateway calls: manage through the registry, invoke through the pool.

It maps an HTTP-shaped request to the function's ABI, places the call, turns
the result back into an HTTP-shaped response, and records the invocation.
It knows nothing of HTTP frameworks; the gateway knows nothing of Redis or VMs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

from scheduler.errors import AccessDenied, FunctionNotFound, SandboxLost, SchedulerError
from scheduler.hostcalls.session import Capabilities
from scheduler.model import (
    STDERR_TAIL_BYTES,
    FunctionVersion,
    InvocationRecord,
    InvokeRequest,
    StartKind,
)
from scheduler.pool.pool import ArtifactLoader, Pool
from scheduler.pool.status import FunctionVMs
from scheduler.registry.nodecache import NodeCache
from scheduler.registry.records import RecordWriter
from scheduler.registry.registry import Registry
from scheduler.roles.control import Control
from scheduler.roles.redaction import NO_SECRETS, redactor
from scheduler.scaling.admission import Throttle
from scheduler.scaling.autoscaler import Autoscaler
from scheduler.settings import AsyncSettings, HostcallSettings
from wasm_runtime import abi
from wasm_runtime.errors import BadCgiResponse, UnifaasError
from wasm_runtime.types import EXIT_TRAP, InvocationResult

log = logging.getLogger(__name__)


@dataclasses.dataclass
class InvokeOutcome:
    """What the gateway turns into a response: either a response or a typed error."""

    invocation_id: str
    function: str
    version: int | None = None
    abi: str | None = None  # the version's: raw, wagi or http
    start: StartKind | None = None
    exit_code: int = EXIT_TRAP
    status: int = 200
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytes = b""
    stderr: bytes = b""
    error: UnifaasError | None = None
    result: InvocationResult | None = None
    total_ms: float = 0.0
    vm_ms: float = 0.0  # of total_ms, the round trip to the VM that answered
    retries: int = 0  # times the call ran again on another VM after its VM was lost

    @property
    def stderr_tail(self) -> bytes:
        """The end of the function's stderr that the platform keeps and shows."""
        return self.stderr[-STDERR_TAIL_BYTES:]


class Platform(Control):
    """One node's platform: a registry in Redis and a warm pool of microVMs."""

    def __init__(
        self,
        registry: Registry,
        pool: Pool,
        node_id: str,
        *,
        autoscale: bool = True,
        async_settings: AsyncSettings | None = None,
        hostcall_settings: HostcallSettings | None = None,
    ) -> None:
        super().__init__(registry, node_id, async_settings)
        self.pool = pool
        self.capabilities = Capabilities(registry.client, hostcall_settings)
        self.cache = NodeCache(registry, on_change=self._heard)
        self.records = RecordWriter(registry)
        self.throttle = Throttle()
        self.autoscaler = Autoscaler(pool, self.cache, self.throttle, self._loader)
        self._autoscale = autoscale
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Follow the registry's change notifications (so versions can be cached here), and
        scale busy functions."""
        self._spawn(self.cache.follow_changes())
        if self._autoscale:
            self._spawn(self.autoscaler.run())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _loader(self, fv: FunctionVersion) -> ArtifactLoader:
        async def load() -> tuple[bytes, bytes | None]:
            return await self.cache.artifacts(fv)

        return load

    # -- management -----------------------------------------------------------
    async def changed(self, name: str, current: FunctionVersion | None) -> None:
        """A function's current version is ``current`` now (None: it was deleted): drain
        what no longer serves, start its min_warm VMs. Idempotent, for the notification
        of this node's own change arrives too."""
        self.cache.forget(name)
        if current is None:
            self.throttle.forget(name)
            await self.pool.drain(name)
            return
        await self.pool.drain(name, keep=current.ref)
        if current.config.min_warm:
            self._spawn(self.pool.ensure_min_warm(current, self._loader(current)))

    def _heard(self, name: str) -> None:
        """Another server (a gateway, another node) changed ``name``."""
        self._spawn(self._apply_heard(name))

    async def _apply_heard(self, name: str) -> None:
        try:
            current: FunctionVersion | None = await self.registry.current(name)
        except FunctionNotFound:
            current = None
        await self.changed(name, current)

    def vms_of(self, name: str) -> tuple[FunctionVMs, ...]:
        return self.pool.status().of(name)

    async def warm_up(self) -> None:
        """After a restart: bring every function's min_warm VMs back."""
        for info in await self.registry.list():
            fv = await self.registry.current(info.name)
            if fv.config.min_warm:
                self._spawn(self.pool.ensure_min_warm(fv, self._loader(fv)))

    # -- invocation -----------------------------------------------------------
    async def invoke(
        self, name: str, request: InvokeRequest, *, invocation_id: str | None = None
    ) -> InvokeOutcome:
        """Run a call here. ``invocation_id``: an async call's, so its record has its id."""
        started = time.perf_counter()
        outcome = InvokeOutcome(invocation_id=invocation_id or uuid.uuid4().hex[:16], function=name)
        redact = NO_SECRETS
        try:
            fv = await self.cache.current(name)
            outcome.version, outcome.abi = fv.version, fv.config.abi
            if not fv.config.public and not request.authorized:
                raise AccessDenied(name)
            secrets = await self.cache.secrets(fv)
            redact = redactor(secrets)
            abi_request = self._abi_request(name, fv, request, secrets)
            invocation = abi_request.invocation(fv.config.limits)
            session = self.capabilities.session(name, fv.config)
            with self.throttle.admit(name, fv.config.admission):
                ran = await self.pool.invoke(fv, self._loader(fv), invocation, session)
            result = ran.result
            outcome.start, outcome.result, outcome.retries = ran.start, result, ran.retries
            outcome.vm_ms = ran.vm_ms
            # A component's stdout is a log too (its answer is its response).
            logs = result.stdout + result.stderr if result.response else result.stderr
            outcome.exit_code, outcome.stderr = result.exit_code, redact.data(logs)
            result.raise_for_outcome()
            if fv.config.abi == "http":
                response = abi.http_response(result)
            elif fv.config.abi == "wagi":
                response = abi.parse_cgi_output(result.stdout)
            else:
                response = abi.raw_response(result.exit_code, result.stdout)
            outcome.status, outcome.headers, outcome.body = (
                response.status,
                response.headers,
                response.body,
            )
        except (UnifaasError, BadCgiResponse) as err:
            outcome.error = err
            if isinstance(err, SandboxLost):
                outcome.retries = err.retries
                if err.after_effect:
                    outcome.error = SandboxLost(
                        f"{err.message}; the call was not run again because it had made a "
                        "change outside its VM (a key-value write or an outbound request)",
                        err.retries,
                        after_effect=True,
                    )
        if outcome.error is not None and redact:
            # An error's message may quote the function (a WAGI answer that is not CGI).
            outcome.error.message = redact.text(outcome.error.message)
            outcome.error.args = (outcome.error.message, *outcome.error.args[1:])
        outcome.total_ms = (time.perf_counter() - started) * 1000
        return outcome

    def record(self, outcome: InvokeOutcome, status: int) -> None:
        """Queue the invocation record once the HTTP status is known (written in batches,
        kept while Redis is away)."""
        if outcome.version is not None:
            self.records.add(self._record(outcome, status))

    def _abi_request(
        self,
        name: str,
        fv: FunctionVersion,
        req: InvokeRequest,
        secrets: tuple[tuple[str, str], ...] = (),
    ) -> abi.AbiRequest:
        env = (*fv.config.env.items(), *secrets)
        if fv.config.abi == "http":
            query = f"?{req.query_string}" if req.query_string else ""
            return abi.http_invocation(
                req.method,
                f"{req.path_info or '/'}{query}",
                req.headers,
                req.body,
                authority=f"{req.server_name}:{req.server_port}",
                base_env=env,
                base_args=fv.config.args,
            )
        if fv.config.abi == "wagi":
            return abi.wagi_invocation(
                req.method,
                req.path_info,
                req.query_string,
                req.headers,
                req.body,
                script_name=f"/fn/{name}",
                server_name=req.server_name,
                server_port=req.server_port,
                remote_addr=req.remote_addr,
                base_env=env,
                base_args=fv.config.args,
            )
        return abi.raw_invocation(req.body, base_env=env, base_args=fv.config.args)

    def _record(self, outcome: InvokeOutcome, status: int) -> InvocationRecord:
        result = outcome.result
        return InvocationRecord(
            id=outcome.invocation_id,
            function=outcome.function,
            version=outcome.version or 0,
            start=outcome.start or StartKind.COLD,
            outcome=result.outcome.value if result else "error",
            exit_code=outcome.exit_code,
            status=status,
            total_ms=round(outcome.total_ms, 3),
            vm_ms=round(result.duration_ms, 3) if result else 0.0,
            stderr_tail=outcome.stderr_tail.decode(errors="replace"),
            retries=outcome.retries,
            created_at=time.time(),
        )

    async def close(self) -> None:
        await self.records.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.autoscaler.close()
        await self.pool.close()
        await self.capabilities.aclose()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        err = task.exception()
        level = logging.WARNING if isinstance(err, SchedulerError) else logging.ERROR
        log.log(level, "background task failed: %s", err)
