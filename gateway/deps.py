"""Request-scoped access to the long-lived objects the app factory put on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from gateway.auth import bearer_matches
from gateway.errors import Unauthorized
from gateway.metrics.telemetry import Telemetry
from gateway.relay import Relay
from gateway.settings import GatewaySettings
from scheduler.roles import Control, Platform


def control(request: Request) -> Control:
    """Function management: a node's platform, or a gateway's cluster."""
    c: Control = request.app.state.control
    return c


def platform(request: Request) -> Platform | None:
    """This server's own platform (None on a gateway, which holds no VMs)."""
    p: Platform | None = request.app.state.platform
    return p


def local(request: Request) -> Platform:
    """This server's own platform, on the routes only a node serves."""
    p = platform(request)
    if p is None:
        raise RuntimeError("a gateway has no platform of its own")
    return p


def relay(request: Request) -> Relay | None:
    """A gateway's way to its nodes (None on a node: calls run here)."""
    r: Relay | None = request.app.state.relay
    return r


def telemetry(request: Request) -> Telemetry:
    t: Telemetry = request.app.state.telemetry
    return t


def settings(request: Request) -> GatewaySettings:
    s: GatewaySettings = request.app.state.settings
    return s


def is_authorized(request: Request) -> bool:
    token: str = request.app.state.token
    return bearer_matches(request.headers.get("authorization"), token)


def require_token(request: Request) -> None:
    if not is_authorized(request):
        raise Unauthorized()
