"""The three server roles, one HTTP server each, in the foreground:

- ``unifaas up``: one node (:class:`scheduler.roles.node.Node`: Redis, image, pool,
  heartbeat) with the public API on top. The one-machine default.
- ``unifaas node``: the same against a shared Redis: it registers itself, and
  gateways send it calls through its internal API.
- ``unifaas gateway``: the public API with no VMs and no state of its own; calls
  go to the nodes (:mod:`gateway.relay`). Run as many as you like.

Everything a role starts is stopped in reverse order on every way out
(SIGINT/SIGTERM, errors at start-up, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.asyncrun import AppRunner
from gateway.auth import load_or_create_token, token_path
from gateway.draining import CloseWhenDraining
from gateway.listener import accept_queue_length, refuse_new_connections
from gateway.metrics.telemetry import Telemetry
from gateway.relay import Relay
from gateway.settings import GatewaySettings, given
from scheduler.asyncq import AsyncWorker
from scheduler.registry import Registry
from scheduler.roles import Cluster, Node
from scheduler.settings import NodeSettings, PoolSettings
from scheduler.state import connect
from wasm_runtime.cliargs import progress
from wasm_runtime.errors import UsageError


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it caught after shutting down, which for
    SIGTERM kills the process before our clean-up runs. We own the signals. The banner
    says "listening" once the socket listens: whoever waits for it may connect at once."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            progress(self.banner)


def _token(settings: GatewaySettings, state_dir: Path) -> tuple[str, str]:
    """The token and where it came from."""
    if settings.token:
        return settings.token, "from UNIFAAS_TOKEN"
    return load_or_create_token(state_dir), f"in {token_path(state_dir)}"


def advertised_url(settings: GatewaySettings) -> str:
    """Where the others reach this server: as set, else the address it listens on
    (a wildcard address is replaced by this host's name)."""
    if settings.advertise_url:
        return settings.advertise_url.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{settings.port}"


def _nothing() -> None:
    pass


# How long a stopping server keeps taking connections the kernel already accepted, and how
# long their queue must stay empty (handshakes under way finish in microseconds).
QUIESCE_MAX_S = 2.0
QUIESCE_EMPTY_S = 0.06
QUIESCE_POLL_S = 0.02
# How long keep-alive connections may stay open once every answer closes its connection
# (gateway.draining): a client under load sends its next request within milliseconds.
LINGER_MAX_S = 1.0


async def _quiesce(server: uvicorn.Server, app: CloseWhenDraining) -> None:
    """Stop taking new connections without resetting those the kernel already accepted
    (gateway.listener), let open keep-alive connections close after their next answer
    (gateway.draining), then let uvicorn close its sockets and drain its calls."""
    app.drain()
    sockets = [sock for listening in server.servers for sock in listening.sockets]
    loop = asyncio.get_running_loop()
    try:
        for sock in sockets:
            refuse_new_connections(sock)
        deadline, empty_since = loop.time() + QUIESCE_MAX_S, loop.time()
        while loop.time() < deadline and loop.time() - empty_since < QUIESCE_EMPTY_S:
            if any(accept_queue_length(sock) for sock in sockets):
                empty_since = loop.time()
            await asyncio.sleep(QUIESCE_POLL_S)
    except OSError as err:  # no filter on this kernel: close as uvicorn always did
        progress(f"unifaas: could not hold new connections off while stopping: {err}")
    try:
        for _ in range(round(LINGER_MAX_S / QUIESCE_POLL_S)):
            if not server.server_state.connections:
                break
            await asyncio.sleep(QUIESCE_POLL_S)
    finally:
        server.should_exit = True


def _stop(
    server: uvicorn.Server,
    app: CloseWhenDraining,
    on_stop: Callable[[], None],
    stopping: set[asyncio.Task[None]],
) -> None:
    if not stopping:
        stopping.add(asyncio.get_running_loop().create_task(_quiesce(server, app)))
    on_stop()


async def _run(
    app: FastAPI, settings: GatewaySettings, banner: str, on_stop: Callable[[], None] = _nothing
) -> None:
    served = CloseWhenDraining(app)
    server = _Server(
        uvicorn.Config(
            served,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            # Nothing is logged at "warning" anyway, but uvicorn still formats each
            # request's access-log arguments unless told there is no access log.
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(settings.drain_timeout_s),
        ),
        banner,
    )
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()  # the quiescing task, kept referenced while it runs
    with contextlib.ExitStack() as stack:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop, server, served, on_stop, stopping)
            stack.callback(loop.remove_signal_handler, sig)
        # Everything made at start-up (FastAPI's routes and schemas, pydantic's validators,
        # the metrics) lives as long as the server: out of every later collection's scan.
        gc.collect()
        gc.freeze()
        await server.serve()
    progress("unifaas: stopping")


async def serve(
    settings: GatewaySettings,
    node_settings: NodeSettings,
    pool: PoolSettings,
    *,
    role: str = "up",
) -> None:
    """``up`` or ``node``: a node and the HTTP server on top of it."""
    url = advertised_url(settings)
    async with Node(node_settings, pool, url=url, progress=progress) as node:
        token, where = _token(settings, node_settings.state_dir)
        platform = node.platform
        app = create_app(platform, token, settings)
        telemetry: Telemetry = app.state.telemetry
        # Calls queued with Prefer: respond-async run on the nodes, up included.
        worker = AsyncWorker(
            platform.queue,
            AppRunner(platform, telemetry),
            node.id,
            platform.async_settings,
            drain_s=settings.drain_timeout_s,
        )
        telemetry.queue.worker = worker
        async with worker:
            await _run(
                app,
                settings,
                f"unifaas listening on {url} ({role} {node.id}; token {where})",
                on_stop=worker.stop_reading,
            )


async def serve_gateway(settings: GatewaySettings, node_settings: NodeSettings) -> None:
    """``gateway``: the public API over the nodes registered in Redis."""
    if node_settings.redis_url is None:
        raise UsageError("a gateway needs the cluster's Redis: --redis URL or UNIFAAS_REDIS_URL")
    token, where = _token(settings, node_settings.state_dir)
    redis = await connect(node_settings.redis_url)
    gateway_id = f"gw-{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    cluster = Cluster(Registry(redis), gateway_id)
    relay = Relay(cluster.nodes, token)
    follow = asyncio.create_task(cluster.nodes.follow(), name="node-directory")
    try:
        await cluster.nodes.refresh()
        app = create_app(cluster, token, settings, relay)
        count = len(cluster.nodes.alive())
        await _run(
            app,
            settings,
            f"unifaas listening on {advertised_url(settings)} (gateway {gateway_id}, "
            f"{count} node{'s' if count != 1 else ''} now; token {where})",
        )
    finally:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        await relay.close()
        await redis.aclose()


def _settings(args: argparse.Namespace) -> tuple[GatewaySettings, NodeSettings]:
    return (
        GatewaySettings(
            **given(
                host=args.host,
                port=args.port,
                advertise_url=getattr(args, "advertise_url", None),
            )
        ),
        NodeSettings(**given(state_dir=args.state_dir, redis_url=args.redis)),
    )


def cmd_up(args: argparse.Namespace) -> int:
    # Not uvloop, though it would speed the host path: qemu.qmp passes descriptors
    # (snapshots) through the loop's socket, which uvloop's pseudo-sockets cannot do.
    settings, node_settings = _settings(args)
    asyncio.run(serve(settings, node_settings, PoolSettings(**given(max_vms=args.max_vms))))
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    settings, node_settings = _settings(args)
    if node_settings.redis_url is None:
        raise UsageError("a node needs the cluster's Redis: --redis URL or UNIFAAS_REDIS_URL")
    pool = PoolSettings(**given(max_vms=args.max_vms))
    asyncio.run(serve(settings, node_settings, pool, role="node"))
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    settings, node_settings = _settings(args)
    asyncio.run(serve_gateway(settings, node_settings))
    return 0
