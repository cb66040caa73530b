"""``unifaas up``: one node in the foreground: Redis (embedded or given), pool, registry, HTTP.

Everything started here is stopped here, in reverse order, on every way out
(SIGINT/SIGTERM through uvicorn's own handlers, errors during start-up, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.auth import load_or_create_token, token_path
from gateway.settings import GatewaySettings
from scheduler.pool import MicroVMFactory, Pool, PoolSettings
from scheduler.redis_server import EmbeddedRedis, connect
from scheduler.registry import Registry
from scheduler.sandbox import function_memory_budget, memory_capacity
from scheduler.service import Platform
from scheduler.settings import SchedulerSettings
from unikernel.accel import resolve_accel
from unikernel.image import ensure_image
from unikernel.settings import VMSettings

HEARTBEAT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it caught after shutting down, which for
    SIGTERM kills the process before our clean-up runs. We own the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _heartbeat(platform: Platform, info: dict[str, Any]) -> None:
    while True:
        await platform.registry.register_node(
            platform.node_id, {**info, "pool": platform.pool.status(), "seen_at": time.time()}
        )
        await asyncio.sleep(HEARTBEAT_S)


async def serve(
    settings: GatewaySettings, node: SchedulerSettings, vm_settings: VMSettings
) -> None:
    node.state_dir.mkdir(parents=True, exist_ok=True)
    token = load_or_create_token(node.state_dir)
    async with contextlib.AsyncExitStack() as stack:
        url = node.redis_url
        if url is None:
            embedded = await stack.enter_async_context(EmbeddedRedis(node.state_dir))
            url = embedded.url
            _progress(f"redis: private redis-server, data in {node.state_dir}")
        redis = await connect(url)
        stack.push_async_callback(redis.aclose)
        image = await asyncio.to_thread(ensure_image, vm_settings.cache_dir, _progress)
        accel = await resolve_accel(vm_settings, image)
        max_vms = min(node.max_vms, memory_capacity(vm_settings))
        _progress(
            f"microVMs: {accel}, up to {max_vms} on this node "
            f"(setting {node.max_vms}, memory allows {memory_capacity(vm_settings)})"
        )
        pool = Pool(
            MicroVMFactory(image, vm_settings, accel),
            PoolSettings(
                max_vms=max_vms,
                vm_memory_budget_mib=function_memory_budget(vm_settings),
                idle_target=node.idle_target,
                queue_max=node.queue_max,
                queue_timeout_s=node.queue_timeout_s,
                boot_concurrency=node.boot_concurrency,
            ),
        )
        node_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        platform = Platform(Registry(redis), pool, node_id)
        stack.push_async_callback(platform.close)
        await pool.start()
        await platform.warm_up()
        beat = asyncio.create_task(
            _heartbeat(
                platform,
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started_at": time.time(),
                    "url": f"http://{settings.host}:{settings.port}",
                },
            )
        )
        stack.callback(beat.cancel)
        app = create_app(platform, token, settings)
        server = _Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                lifespan="off",
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, setattr, server, "should_exit", True)
            stack.callback(loop.remove_signal_handler, sig)
        _progress(
            f"unifaas listening on http://{settings.host}:{settings.port} "
            f"(token in {token_path(node.state_dir)})"
        )
        await server.serve()
        _progress("unifaas: stopping")
