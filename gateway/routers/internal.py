"""``POST /internal/invoke/{name}``: a gateway's call, run on this node.

Served by every server that holds VMs (``unifaas up`` and ``unifaas node``),
only to bearers of the cluster's token. The body is the caller's whole request
(:mod:`scheduler.roles.nodewire`); the answer is the response the caller gets, plus
the node's id and, on an error, its kind (:mod:`gateway.relay` reads both).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from gateway import deps
from gateway.limits import read_body
from gateway.openapi import MANAGEMENT, error_responses
from gateway.relay import INTERNAL_INVOKE_PATH
from gateway.routers.invoke import RESPONSES, answer
from scheduler.errors import BadNodeRequest
from scheduler.roles import decode_invoke

router = APIRouter(tags=["internal"])
# The caller's request, its envelope and headers are bounded like a public call's.
ENVELOPE_BYTES = 64 * 1024


@router.post(
    INTERNAL_INVOKE_PATH + "{name}",
    summary="Run a call a gateway placed on this node (cluster token only)",
    dependencies=[Depends(deps.require_token)],
    responses={**RESPONSES, **error_responses(*MANAGEMENT, BadNodeRequest)},
    response_class=Response,
)
async def internal_invoke(request: Request, name: str) -> Response:
    settings = deps.settings(request)
    body = await read_body(
        request, settings.max_body_bytes + settings.max_header_bytes + ENVELOPE_BYTES
    )
    platform = deps.local(request)
    return await answer(request, name, decode_invoke(body), node=platform.node_id)
