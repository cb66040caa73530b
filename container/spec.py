"""What the image declares about itself: its name, entrypoint, environment, port and labels.

One place, read three ways: the build writes it into the image (``docker import
--change``), the Kubernetes manifests and the compose file must agree with it, and a test
compares it with what ``docker image inspect`` reads back from a built image.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

NAME = "unifaas"
# The moving tag the manifests and the compose file name; each build is also tagged by its
# content key (``unifaas:<key>``), which is what an operator pins.
LATEST = f"{NAME}:latest"
VENV = "/opt/unifaas/venv"
GUEST_DIR = "/opt/unifaas/guest"  # the kernel and floor initramfs (UNIFAAS_VM_PREBUILT_DIR)
CACHE_DIR = "/opt/unifaas/cache"  # the agent's initramfs, built at image build time
PORT = 8080
# The gateway's user in the manifests and the compose file: nobody, no home, no shell.
UNPRIVILEGED_UID = 65534
# The label carrying the content key, so a build can tell its image is already there.
KEY_LABEL = "dev.unifaas.content-key"


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    entrypoint: tuple[str, ...] = ("unifaas",)
    cmd: tuple[str, ...] = ("--help",)
    env: tuple[tuple[str, str], ...] = (
        ("PATH", f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("LANG", "C.UTF-8"),
        # Listen on every address of the container; a host-network container sets
        # 127.0.0.1 (deploy/compose.yaml).
        ("UNIFAAS_HOST", "0.0.0.0"),
        ("UNIFAAS_VM_PREBUILT_DIR", GUEST_DIR),
        ("UNIFAAS_VM_CACHE_DIR", CACHE_DIR),
        # The gateway's root is read-only: no bytecode written at run time (the image's
        # modules are compiled at build time).
        ("PYTHONDONTWRITEBYTECODE", "1"),
    )
    port: int = PORT
    workdir: str = "/"

    def changes(self, key: str) -> list[str]:
        """``docker import --change`` instructions (Dockerfile syntax, JSON forms)."""
        return [
            f"ENTRYPOINT {json.dumps(list(self.entrypoint))}",
            f"CMD {json.dumps(list(self.cmd))}",
            *(f"ENV {name}={value}" for name, value in self.env),
            f"EXPOSE {self.port}/tcp",
            f"WORKDIR {self.workdir}",
            f"LABEL {KEY_LABEL}={key}",
            f"LABEL org.opencontainers.image.title={NAME}",
        ]

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclasses.dataclass(frozen=True)
class InspectedImage:
    """The parts of ``docker image inspect`` the spec speaks for."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    ports: frozenset[str]
    workdir: str
    labels: dict[str, str]
    size_bytes: int

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> InspectedImage:
        config = data.get("Config") or {}
        env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
        return cls(
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=env,
            ports=frozenset(config.get("ExposedPorts") or {}),
            workdir=str(config.get("WorkingDir") or ""),
            labels=dict(config.get("Labels") or {}),
            size_bytes=int(data.get("Size") or 0),
        )

    def as_spec(self) -> ImageSpec:
        """The image's metadata in the spec's terms (its one exposed port)."""
        ports = sorted(int(p.split("/")[0]) for p in self.ports)
        return ImageSpec(
            entrypoint=self.entrypoint,
            cmd=self.cmd,
            env=tuple(self.env.items()),
            port=ports[0] if len(ports) == 1 else 0,
            workdir=self.workdir,
        )

    def differences(self, spec: ImageSpec) -> list[str]:
        """How this image departs from ``spec`` (empty: it is what the spec says)."""
        wrong = []
        if self.entrypoint != spec.entrypoint:
            wrong.append(f"entrypoint {self.entrypoint} != {spec.entrypoint}")
        if self.cmd != spec.cmd:
            wrong.append(f"cmd {self.cmd} != {spec.cmd}")
        for name, value in spec.env:
            if self.env.get(name) != value:
                wrong.append(f"env {name}={self.env.get(name)!r} != {value!r}")
        if self.ports != {f"{spec.port}/tcp"}:
            wrong.append(f"ports {sorted(self.ports)} != ['{spec.port}/tcp']")
        if self.workdir != spec.workdir:
            wrong.append(f"workdir {self.workdir!r} != {spec.workdir!r}")
        return wrong


SPEC = ImageSpec()
