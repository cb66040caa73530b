"""Typed settings of the container image's build (env prefix ``UNIFAAS_CONTAINER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "unifaas" / "container"


class ContainerSettings(BaseSettings):
    """Where the image's Debian root comes from and where its build keeps what it reuses.

    Every field can be set from the environment, e.g. ``UNIFAAS_CONTAINER_MIRROR=...``.
    """

    model_config = SettingsConfigDict(env_prefix="UNIFAAS_CONTAINER_", frozen=True)

    # The Debian release of the image's root: the one the project is built and tested on.
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    # The Debian root (a tarball per package list) and the wheels; reused across builds.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    docker: str = "docker"
    compose: str = "docker-compose"
