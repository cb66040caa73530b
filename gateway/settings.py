"""Typed settings of the gateway and of ``unifaas up`` (env prefix ``UNIFAAS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "unifaas"


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Token file, embedded Redis data and logs live here.
    state_dir: Path = Field(default_factory=_default_state_dir)
    # None = start a private redis-server in the state dir (the embedded default).
    redis_url: str | None = None
    # Largest request body an invocation accepts; larger gets 413.
    max_body_bytes: int = 6 * 1024 * 1024
    # Largest module/files upload a deploy accepts.
    max_deploy_bytes: int = 64 * 1024 * 1024
    # Node capacity and pool behaviour.
    max_vms: int = Field(default=8, ge=1)
    idle_target: int = Field(default=1, ge=0)
    queue_max: int = Field(default=64, ge=0)
    queue_timeout_s: float = 30.0
