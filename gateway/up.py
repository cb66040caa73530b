"""``unifaas up``: one node in the foreground, with the HTTP gateway served on top of it.

The node (Redis, image, pool, heartbeat: :class:`scheduler.node.Node`) is
started first and stopped last; uvicorn serves in between. Everything is
stopped in reverse order on every way out (SIGINT/SIGTERM, errors at start-up, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from gateway.auth import load_or_create_token, token_path
from gateway.settings import GatewaySettings, given
from scheduler.node import Node
from scheduler.settings import NodeSettings, PoolSettings
from wasm_runtime.cliargs import progress


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it caught after shutting down, which for
    SIGTERM kills the process before our clean-up runs. We own the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: GatewaySettings, node_settings: NodeSettings, pool: PoolSettings) -> None:
    url = f"http://{settings.host}:{settings.port}"
    async with Node(node_settings, pool, url=url, progress=progress) as node:
        token = settings.token or load_or_create_token(node_settings.state_dir)
        where = (
            "from UNIFAAS_TOKEN" if settings.token else f"in {token_path(node_settings.state_dir)}"
        )
        app = create_app(node.platform, token, settings)
        server = _Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=int(settings.drain_timeout_s),
            )
        )
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as stack:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, setattr, server, "should_exit", True)
                stack.callback(loop.remove_signal_handler, sig)
            progress(f"unifaas listening on {url} (token {where})")
            await server.serve()
        progress("unifaas: stopping")


def cmd_up(args: argparse.Namespace) -> int:
    # Not uvloop, though it would speed the host path: qemu.qmp passes descriptors
    # (snapshots) through the loop's socket, which uvloop's pseudo-sockets cannot do.
    asyncio.run(
        serve(
            GatewaySettings(**given(host=args.host, port=args.port)),
            NodeSettings(**given(state_dir=args.state_dir, redis_url=args.redis)),
            PoolSettings(**given(max_vms=args.max_vms)),
        )
    )
    return 0
