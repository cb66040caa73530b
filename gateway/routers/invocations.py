"""``/v1/invocations`` and ``/v1/dead-letters``: one call's record, an async call's status and
response, and the calls that went dead.

An async call's id (128 random bits) is enough to read its status and response
when its function is public, so whoever made the call can fetch its result
without the management token; a private function's, any sync record and the
dead-letters need the token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from gateway import deps
from gateway.errors import Unauthorized
from gateway.openapi import COMMON, MANAGEMENT, error_responses
from gateway.views import async_json, record_json
from scheduler.asyncq import AsyncCall, AsyncStatus
from scheduler.errors import InvocationNotFound, NotDead, NotFinished, StateStoreError

router = APIRouter(prefix="/v1", tags=["invocations"])
READ = error_responses(*COMMON, Unauthorized, StateStoreError, InvocationNotFound)
DEAD_LETTERS_MAX = 1000
# Headers the stored response had that the server sets again for itself.
_DROP = {"content-length", "transfer-encoding", "connection", "date", "server"}


async def _async_call(request: Request, invocation_id: str) -> AsyncCall | None:
    """The async call, when it is one; without the token, only a public function's."""
    call = await deps.control(request).async_call(invocation_id)
    if call is None or not call.public:
        deps.require_token(request)
    return call


@router.get(
    "/invocations/{invocation_id}",
    summary="An async call's status (queued, running, succeeded, failed, dead), else a "
    "call's record",
    responses=READ,
)
async def invocation(request: Request, invocation_id: str) -> dict[str, Any]:
    call = await _async_call(request, invocation_id)
    if call is not None:
        return async_json(call)
    return record_json(await deps.control(request).invocation(invocation_id))


@router.get(
    "/invocations/{invocation_id}/response",
    summary="An async call's response, exactly as the sync call would have answered",
    response_class=Response,
    responses={
        **READ,
        **error_responses(*COMMON, NotFinished),
        200: {"description": "the function's own response", "content": {"*/*": {}}},
        "default": {"description": "the function's own response", "content": {"*/*": {}}},
    },
)
async def invocation_response(request: Request, invocation_id: str) -> Response:
    call = await _async_call(request, invocation_id)
    if call is None:
        raise InvocationNotFound(invocation_id)
    stored = call.response
    if not call.status.ended or stored is None:
        detail = (call.error or "") if call.status is AsyncStatus.DEAD else ""
        raise NotFinished(invocation_id, call.status.value, detail)
    response = Response(content=stored.body, status_code=stored.status)
    for key, value in stored.headers:
        if key.lower() not in _DROP:
            response.headers.append(key, value)
    return response


@router.get(
    "/dead-letters",
    summary="Async calls that went dead, newest first",
    dependencies=[Depends(deps.require_token)],
    responses=error_responses(*MANAGEMENT),
)
async def dead_letters(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=DEAD_LETTERS_MAX)] = 100,
) -> list[dict[str, Any]]:
    return [async_json(c) for c in await deps.control(request).dead_letters(limit)]


@router.post(
    "/dead-letters/{invocation_id}/retry",
    summary="Queue a dead async call again (its attempts and age start over)",
    status_code=202,
    dependencies=[Depends(deps.require_token)],
    responses=error_responses(*MANAGEMENT, InvocationNotFound, NotDead),
)
async def retry_dead(request: Request, invocation_id: str) -> dict[str, Any]:
    return async_json(await deps.control(request).retry_dead(invocation_id))
