"""Typed settings of the HTTP gateway (env prefix ``UNIFAAS_``); node state is scheduler's."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIFAAS_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Largest request body an invocation accepts; larger gets 413.
    max_body_bytes: int = 6 * 1024 * 1024
    # Largest module/files upload a deploy accepts.
    max_deploy_bytes: int = 64 * 1024 * 1024
