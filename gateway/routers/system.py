"""``/healthz`` and ``/v1/status``: liveness and the node's pool."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway import deps

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/status", summary="Nodes and pool", dependencies=[Depends(deps.require_token)])
async def status(request: Request) -> dict[str, Any]:
    platform = deps.platform(request)
    return {
        "node": platform.node_id,
        "pool": platform.pool.status(),
        "nodes": await platform.registry.list_nodes(),
    }
