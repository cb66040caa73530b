"""Request-scoped access to the long-lived objects the app factory put on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from gateway.auth import bearer_matches
from gateway.errors import Unauthorized
from gateway.settings import GatewaySettings
from gateway.telemetry import Telemetry
from scheduler.service import Platform


def platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


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
