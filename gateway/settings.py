"""Typed settings of the gateway package (env prefix ``UNIFAAS_``): the HTTP server's, and the
CLI's way to the platform. The node's own settings are ``scheduler.settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler.registry import TIMEOUT_MAX_S
from scheduler.settings import default_state_dir

# A shared token shorter than this is refused at start (a made one has 43).
TOKEN_MIN_CHARS = 16


def given(**values: Any) -> dict[str, Any]:
    """The options a user gave (not None), to build settings whose defaults fill the rest."""
    return {k: v for k, v in values.items() if v is not None}


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Where the other servers of a cluster reach this one (a node's heartbeat carries it);
    # unset: http://HOST:PORT, a wildcard HOST replaced by this machine's name.
    advertise_url: str | None = None
    # Largest request body an invocation accepts; larger gets 413.
    max_body_bytes: int = 6 * 1024 * 1024
    # Largest request head (header names and values) any route accepts; larger gets 431.
    max_header_bytes: int = 32 * 1024
    # Largest module/files upload a deploy accepts (each part): what an artifact may be.
    max_deploy_bytes: int = 128 * 1024 * 1024
    # On SIGTERM: no new connections; calls in flight get this long to finish
    # (default: the longest timeout a function may have, plus room to queue)
    # before the VMs are stopped under them.
    drain_timeout_s: float = TIMEOUT_MAX_S + 30
    # The management token every server of a cluster accepts (UNIFAAS_TOKEN, the same
    # variable the CLI reads); unset: made once and kept in <state_dir>/token.
    token: str | None = Field(default=None, min_length=TOKEN_MIN_CHARS)


class ClientSettings(BaseSettings):
    """Where the CLI finds the platform, and its token (``UNIFAAS_URL``, ``UNIFAAS_TOKEN``)."""

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    url: str = "http://127.0.0.1:8080"
    # The management token; unset: read from <state_dir>/token, as `up` writes it.
    token: str | None = None
    state_dir: Path = Field(default_factory=default_state_dir)
