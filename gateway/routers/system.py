"""``/healthz`` and ``/v1/status``: liveness and the node's pool."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import deps
from gateway.errors import NotFound
from gateway.openapi import COMMON, MANAGEMENT, error_responses
from gateway.views import confinement_json, node_json, pool_json
from scheduler.errors import StateStoreError

# Any route may meet a head over the limit, a bad parameter or a failure of ours.
router = APIRouter(tags=["system"], responses=error_responses(*COMMON))
STATIC = Path(__file__).resolve().parent.parent / "static"
# A scrape does not wait longer than this for the async queue's depth.
QUEUE_STATS_TIMEOUT_S = 1.0
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/v1/status",
    summary="This server, its pool (on a node) and the cluster's nodes",
    dependencies=[Depends(deps.require_token)],
    responses=error_responses(*MANAGEMENT),
)
async def status(request: Request) -> dict[str, Any]:
    platform = deps.platform(request)
    nodes = await _nodes(request)
    if platform is None:
        return {"role": "gateway", "node": deps.control(request).node_id, "nodes": nodes}
    return {
        "role": "node",
        "node": platform.node_id,
        "pool": pool_json(platform.pool.status()),
        "confinement": confinement_json(platform.pool.host.confinement),
        "nodes": nodes,
    }


@router.get(
    "/v1/nodes",
    summary="The nodes that run VMs: URL, liveness, VMs, free slots, warm functions",
    dependencies=[Depends(deps.require_token)],
    responses=error_responses(*MANAGEMENT),
)
async def nodes(request: Request) -> list[dict[str, Any]]:
    return await _nodes(request)


async def _nodes(request: Request) -> list[dict[str, Any]]:
    """Every node with a live record; ``alive`` false for one this gateway gave up on
    until its next heartbeat."""
    records = await deps.control(request).registry.list_nodes()
    relay = deps.relay(request)
    down = set() if relay is None else {n.id for n, up in relay.nodes.known() if not up}
    return [node_json(n, alive=n.id not in down) for n in records]


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    telemetry = deps.telemetry(request)
    try:
        telemetry.queue.stats = await asyncio.wait_for(
            deps.control(request).queue.stats(), QUEUE_STATS_TIMEOUT_S
        )
    except (StateStoreError, TimeoutError):
        telemetry.queue.stats = None  # the scrape still answers, without them
    return Response(deps.telemetry(request).metrics_text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/dashboard", summary="Live dashboard (HTML)", response_class=FileResponse)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/dashboard/data", summary="The dashboard's live snapshot")
async def dashboard_data(request: Request) -> dict[str, Any]:
    return deps.telemetry(request).dashboard_data()


@router.get(
    "/dashboard/static/{name}",
    summary="Dashboard script and style",
    response_class=FileResponse,
    responses=error_responses(*COMMON, NotFound),
)
async def dashboard_static(name: str) -> FileResponse:
    path = STATIC / name
    media_type = STATIC_TYPES.get(path.suffix)
    # Only the page's own flat files: no subpaths, no other types.
    if media_type is None or "/" in name or not path.is_file():
        raise NotFound(f"no dashboard file {name!r}")
    return FileResponse(path, media_type=media_type)
