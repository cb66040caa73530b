"""How a node runs a call its async worker took from the queue: as the sync route would, so
the response it keeps is the one the caller would have had (recorded and observed too)."""

from __future__ import annotations

from fastapi import Response

from gateway.errors import error_response
from gateway.metrics.telemetry import Telemetry
from gateway.routers.invoke import respond
from scheduler.asyncq import Ran, StoredResponse
from scheduler.errors import BadNodeRequest
from scheduler.roles import Platform, decode_invoke

# The server sets these for itself when the response is served.
_DROP = {"content-length", "transfer-encoding", "connection"}


def stored(response: Response) -> StoredResponse:
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in response.raw_headers
        if k.decode("latin-1").lower() not in _DROP
    ]
    return StoredResponse(response.status_code, headers, bytes(response.body))


class AppRunner:
    """The async worker's :data:`~scheduler.asyncq.worker.Runner` on this node."""

    def __init__(self, platform: Platform, telemetry: Telemetry) -> None:
        self.platform = platform
        self.telemetry = telemetry

    async def __call__(self, call_id: str, function: str, request: bytes) -> Ran:
        try:
            invoke_request = decode_invoke(request)
        except BadNodeRequest as err:  # not ours, or from a release that wrote it otherwise
            return Ran(stored(error_response(err)), err)
        outcome = await self.platform.invoke(function, invoke_request, invocation_id=call_id)
        response = respond(self.platform, self.telemetry, outcome, invoke_request)
        return Ran(stored(response), outcome.error)
