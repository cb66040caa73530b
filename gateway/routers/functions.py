"""``/v1/functions``: deploy, list, describe, delete, rollback, logs."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.datastructures import UploadFile

from gateway import deps
from gateway.errors import BodyTooLarge, RequestInvalid
from gateway.limits import read_body
from gateway.openapi import MANAGEMENT, error_responses
from gateway.views import function_vms_json, info_json, record_json, version_json
from scheduler.errors import FunctionNotFound, InvalidConfig
from scheduler.model import FunctionConfig
from scheduler.registry import PAGE_DEFAULT, PAGE_MAX
from scheduler.state import RECENT_INVOCATIONS as LOGS_MAX
from wasm_runtime.errors import InvalidModule

router = APIRouter(
    prefix="/v1",
    tags=["functions"],
    dependencies=[Depends(deps.require_token)],
    responses=error_responses(*MANAGEMENT),
)


# The deploy form's parts, as its schema below says; anything else is refused by name.
DEPLOY_PARTS = ("module", "files", "config", "secrets")
# Room for multipart framing around parts of the deploy limit each.
FORM_FRAMING_BYTES = 64 * 1024
DEPLOY_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["module"],
                "additionalProperties": False,
                "properties": {
                    "module": {
                        "type": "string",
                        "format": "binary",
                        "description": "the module: a WebAssembly binary (a WASI preview1 "
                        "command, exporting _start)",
                    },
                    "files": {
                        "type": "string",
                        "format": "binary",
                        "description": "a tar (optionally gzip) of files every call sees "
                        "under / as a fresh writable copy",
                    },
                    "config": {
                        "type": "string",
                        "description": "a JSON object of config fields (abi, env, args, "
                        "timeout_s, memory_mib, fuel, min_warm, max_vms, concurrency, "
                        "keep_alive_s, public, allow_hosts, kv_max_keys, ...); missing "
                        "fields get their defaults",
                    },
                    "secrets": {
                        "type": "string",
                        "description": "a JSON object of secret env variables, stored apart "
                        "from the config and never shown (only their names are); replaces "
                        "the current version's, which are kept when the part is left out",
                    },
                },
            }
        }
    },
}


async def _part_bytes(value: UploadFile | str, limit: int) -> bytes:
    # A part may come as a file or as a plain field; both mean the same bytes.
    data = await value.read(limit + 1) if isinstance(value, UploadFile) else value.encode()
    if len(data) > limit:
        raise BodyTooLarge(limit)
    return data


async def _deploy_parts(request: Request, limit: int) -> dict[str, bytes]:
    await read_body(request, len(DEPLOY_PARTS) * limit + FORM_FRAMING_BYTES)
    n = len(DEPLOY_PARTS)
    # The body is already bounded, so Starlette's per-part limit never trips before ours.
    async with request.form(max_files=n, max_fields=n, max_part_size=n * limit) as form:
        problems: list[tuple[str, str]] = []
        seen: dict[str, UploadFile | str] = {}
        for key, value in form.multi_items():
            if key not in DEPLOY_PARTS:
                expected = ", ".join(DEPLOY_PARTS)
                problems.append((f"form.{key}", f"unknown part; expected {expected}"))
            elif key in seen:
                problems.append((f"form.{key}", "given more than once"))
            seen[key] = value
        if "module" not in seen:
            problems.append(("form.module", "required"))
        if problems:
            raise RequestInvalid(problems)
        parts = {key: await _part_bytes(value, limit) for key, value in seen.items()}
    for key in ("module", "files"):
        if key in parts and not parts[key]:
            raise InvalidConfig(key, "is empty")
    return parts


def _json_object(part: str, text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text or "{}")
    except ValueError as err:
        raise InvalidConfig(part, f"not JSON: {err}") from err
    if not isinstance(raw, dict):
        raise InvalidConfig(part, "must be a JSON object")
    return raw


def _parse_config(text: str) -> FunctionConfig:
    return FunctionConfig.from_dict(_json_object("config", text), strict=True)


def _parse_secrets(text: str) -> dict[str, str]:
    # Names only in messages: the values are the secrets.
    secrets = _json_object("secrets", text)
    for key, value in secrets.items():
        if not isinstance(value, str):
            raise InvalidConfig(f"secrets.{key[:64]}", "must be a string")
    return secrets


@router.post(
    "/functions/{name}",
    status_code=201,
    summary="Deploy a new version",
    openapi_extra={"requestBody": DEPLOY_BODY},
    responses=error_responses(*MANAGEMENT, InvalidModule, InvalidConfig, BodyTooLarge),
)
async def deploy(request: Request, name: str) -> dict[str, Any]:
    parts = await _deploy_parts(request, deps.settings(request).max_deploy_bytes)
    config = _parse_config(parts.get("config", b"").decode(errors="replace"))
    secrets = None
    if "secrets" in parts:
        secrets = _parse_secrets(parts["secrets"].decode(errors="replace"))
    control = deps.control(request)
    fv = await control.deploy(name, parts["module"], config, parts.get("files"), secrets)
    return version_json(fv)


# A route's own list is complete (it replaces the router's, status by status).
NAMED = error_responses(*MANAGEMENT, FunctionNotFound)


@router.get(
    "/functions",
    summary="List functions, a page at a time (by name; the next page's URL is in `Link`)",
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": 'the next page, as `<URL>; rel="next"`; absent on the last',
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
async def list_functions(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="functions per page")] = (
        PAGE_DEFAULT
    ),
    after: Annotated[
        str, Query(max_length=128, description="start after this name (the previous page's last)")
    ] = "",
) -> list[dict[str, Any]]:
    page = await deps.control(request).list(after, limit)
    if page.next_after is not None:
        query = urlencode({"limit": limit, "after": page.next_after})
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return [info_json(i) for i in page.functions]


@router.get("/functions/{name}", summary="Describe a function", responses=NAMED)
async def describe(request: Request, name: str) -> dict[str, Any]:
    d = await deps.control(request).describe(name)
    return {
        **info_json(d.info),
        "versions": [version_json(v) for v in d.versions],
        "warm_vms": function_vms_json(d.vms),
    }


@router.delete(
    "/functions/{name}", summary="Delete a function and all its versions", responses=NAMED
)
async def delete(request: Request, name: str) -> dict[str, Any]:
    await deps.control(request).delete(name)
    return {"deleted": name}


@router.post(
    "/functions/{name}/rollback", summary="Make an earlier version current", responses=NAMED
)
async def rollback(
    request: Request,
    name: str,
    to: Annotated[int | None, Query(ge=1, description="default: the version before")] = None,
) -> dict[str, Any]:
    return version_json(await deps.control(request).rollback(name, to))


@router.get("/functions/{name}/invocations", summary="Recent invocations (logs)", responses=NAMED)
async def logs(
    request: Request,
    name: str,
    limit: Annotated[int, Query(ge=1, le=LOGS_MAX, description="newest first")] = 50,
) -> list[dict[str, Any]]:
    records = await deps.control(request).recent_invocations(name, limit)
    return [record_json(r) for r in records]
