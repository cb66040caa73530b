"""``/v1/functions`` and ``/v1/invocations``: deploy, list, describe, delete, rollback, logs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile

from gateway import deps
from gateway.errors import BodyTooLarge
from gateway.views import function_vms_json, info_json, record_json, version_json
from scheduler.errors import InvalidConfig
from scheduler.model import FunctionConfig

router = APIRouter(prefix="/v1", tags=["functions"], dependencies=[Depends(deps.require_token)])


async def _read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(limit)
    if not data:
        raise InvalidConfig(what, "is empty")
    return data


def _parse_config(text: str) -> FunctionConfig:
    try:
        raw = json.loads(text or "{}")
    except ValueError as err:
        raise InvalidConfig("config", f"not JSON: {err}") from err
    if not isinstance(raw, dict):
        raise InvalidConfig("config", "must be a JSON object")
    return FunctionConfig.from_dict(raw, strict=True)


@router.post("/functions/{name}", status_code=201, summary="Deploy a new version")
async def deploy(
    request: Request,
    name: str,
    module: UploadFile,
    files: UploadFile | None = None,
    config: str = Form(default="{}"),
) -> dict[str, Any]:
    limit = deps.settings(request).max_deploy_bytes
    wasm = await _read_upload(module, limit, "module")
    bundle = await _read_upload(files, limit, "files") if files is not None else None
    fv = await deps.platform(request).deploy(name, wasm, _parse_config(config), bundle)
    return version_json(fv)


@router.get("/functions", summary="List functions")
async def list_functions(request: Request) -> list[dict[str, Any]]:
    return [info_json(i) for i in await deps.platform(request).list()]


@router.get("/functions/{name}", summary="Describe a function")
async def describe(request: Request, name: str) -> dict[str, Any]:
    d = await deps.platform(request).describe(name)
    return {
        **info_json(d.info),
        "versions": [version_json(v) for v in d.versions],
        "warm_vms": function_vms_json(d.vms),
    }


@router.delete("/functions/{name}", summary="Delete a function and all its versions")
async def delete(request: Request, name: str) -> dict[str, Any]:
    await deps.platform(request).delete(name)
    return {"deleted": name}


@router.post("/functions/{name}/rollback", summary="Make an earlier version current")
async def rollback(request: Request, name: str, to: int | None = None) -> dict[str, Any]:
    return version_json(await deps.platform(request).rollback(name, to))


@router.get("/functions/{name}/invocations", summary="Recent invocations (logs)")
async def logs(request: Request, name: str, limit: int = 50) -> list[dict[str, Any]]:
    platform = deps.platform(request)
    await platform.registry.get(name)  # 404 for unknown functions
    return [record_json(r) for r in await platform.registry.recent_invocations(name, limit)]


@router.get("/invocations/{invocation_id}", summary="One invocation's record")
async def invocation(request: Request, invocation_id: str) -> dict[str, Any]:
    return record_json(await deps.platform(request).registry.invocation(invocation_id))
