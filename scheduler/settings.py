"""Typed settings of the scheduler layer (env prefix ``UNIFAAS_``), built once, passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "unifaas"


class SchedulerSettings(BaseSettings):
    """Where the scheduler keeps its state.

    Every field can be set from the environment, e.g.
    ``UNIFAAS_REDIS_URL=redis://db.internal:6379/0``.
    """

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    # Node state: the embedded Redis's data (<state_dir>/redis: AOF, log, socket).
    state_dir: Path = Field(default_factory=_default_state_dir)
    # Redis shared by all nodes and gateways; None = start a private redis-server
    # on a unix socket under state_dir (single-machine default).
    redis_url: str | None = None
