"""Gateway fixtures: the app in-process over the ASGI transport, with a fake sandbox.

The pool runs a fake sandbox that executes functions with the real wasmtime
runner in this process, so these tests are fast; the same paths over a real
socket and real microVMs are in test_platform_e2e.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.app import create_app
from gateway.settings import GatewaySettings
from scheduler.pool.pool import Pool
from scheduler.pool.sandbox import HostLimits
from scheduler.registry.registry import Registry
from scheduler.roles.platform import Platform
from scheduler.settings import PoolSettings
from tests.conftest import wasm
from tests.platforms import LivePlatform, running_platform
from unikernel.errors import VMGone
from wasm_runtime.component.runner import LoadedComponent
from wasm_runtime.hostcalls import HostAnswer, HostHandler, HostRequest
from wasm_runtime.hostfuncs import Bridge
from wasm_runtime.replies import LoadReply
from wasm_runtime.runner import FunctionRuntime, LoadedFunction
from wasm_runtime.types import Invocation, InvocationResult


def thread_bridge(handler: HostHandler, loop: asyncio.AbstractEventLoop) -> Bridge:
    """The agent's job in-process: a hostcall from the runner's thread to the async handler."""

    def ask(request: HostRequest, timeout_s: float) -> HostAnswer:
        future = asyncio.run_coroutine_threadsafe(handler(request), loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    return ask


TOKEN = "test-token"
DEPLOY_LIMIT = 256 * 1024  # bytes per deploy part in the in-process app
HEADER_LIMIT = 8 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class InProcessSandbox:
    def __init__(self) -> None:
        self._runtime = FunctionRuntime()
        self._functions: dict[str, LoadedFunction | LoadedComponent] = {}
        self.alive = True
        self.restored = False
        self.preloaded: str | None = None
        self.die_on_next_call = False  # the VM is lost under its next call
        self.die_after_call = False  # ... once that call has run

    async def load(self, fn_id: str, artifact: bytes, *, files: bytes | None = None) -> LoadReply:
        self._functions[fn_id] = await asyncio.to_thread(
            self._runtime.load, artifact, files_tar=files
        )
        return LoadReply(fn_id)

    async def invoke(
        self, fn_id: str, invocation: Invocation, hostcalls: HostHandler | None = None
    ) -> InvocationResult:
        if self.die_on_next_call:
            self.alive = False
            raise VMGone("killed by the test")
        bridge = thread_bridge(hostcalls, asyncio.get_running_loop()) if hostcalls else None
        fn = self._functions[fn_id]
        result = await asyncio.to_thread(self._runtime.invoke, fn, invocation, bridge)
        if self.die_after_call:
            # The VM dies as the call ends, after its hostcalls were made.
            self.alive = False
            raise VMGone("killed by the test after the call ran")
        return result

    async def warm_up(self) -> None:
        pass

    async def ping(self, timeout_s: float) -> float:
        return 0.0

    async def stop(self) -> None:
        self.alive = False
        self._runtime.close()

    def rss_kib(self) -> int:
        return 0

    def private_kib(self) -> int:
        return 0


class InProcessFactory:
    def __init__(self) -> None:
        self.sandboxes: list[InProcessSandbox] = []

    async def close(self) -> None:
        pass

    def host_limits(self) -> HostLimits:
        return HostLimits()

    async def boot(self, fn_id: str | None = None) -> InProcessSandbox:
        self.sandboxes.append(InProcessSandbox())
        return self.sandboxes[-1]

    def wants_template(self, fn_id: str) -> bool:
        return False  # templates are snapshots of real VMs

    async def keep_template(self, fn_id: str, artifact: bytes, files: bytes | None) -> None:
        raise AssertionError("not asked for")

    def forget_template(self, fn_id: str) -> None:
        pass

    def templates_held(self) -> int:
        return 0


@pytest.fixture
def factory() -> InProcessFactory:
    return InProcessFactory()


@pytest.fixture
async def client(
    redis: aioredis.Redis, factory: InProcessFactory
) -> AsyncIterator[httpx.AsyncClient]:
    pool = Pool(factory, PoolSettings(max_vms=2, idle_target=0, queue_timeout_s=5))
    platform = Platform(Registry(redis), pool, "test-node")
    await platform.start()
    await pool.start()
    settings = GatewaySettings(
        max_body_bytes=1024, max_deploy_bytes=DEPLOY_LIMIT, max_header_bytes=HEADER_LIMIT
    )
    app = create_app(platform, TOKEN, settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await platform.close()


async def deploy(client: httpx.AsyncClient, name: str, module: str, **config: Any) -> Any:
    r = await client.post(
        f"/v1/functions/{name}",
        headers=AUTH,
        files={"module": (f"{module}.wasm", wasm(module))},
        data={"config": json.dumps(config)},
    )
    assert r.status_code == 201, r.text
    return r.json()


# -- One real platform (``unifaas up`` in a subprocess) for every end-to-end test.


@pytest.fixture(scope="session")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("modules")
    paths = {}
    for name in ("hello", "echo", "cgi", "files", "misbehave"):
        paths[name] = d / f"{name}.wasm"
        paths[name].write_bytes(wasm(name))
    return paths


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    state = tmp_path_factory.mktemp("state")
    with running_platform(state) as p:
        yield p
