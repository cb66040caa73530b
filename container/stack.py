"""The compose file's cluster, started and ended by the ids of the containers it made.

``docker-compose up -d`` starts it; the ids are read back at once (``ps -q``), and on every
way out, failures included, those containers are removed by id (with their volumes) and
``down -v`` takes the project's named volume and network. Nothing of another project is
touched: the project name is the caller's, unique per run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import TracebackType

from container import commands
from container.docker import Docker
from container.errors import ContainerError, DockerUnavailable
from container.settings import ContainerSettings

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "deploy" / "compose"
NODES = ("node1", "node2", "node3")
GATEWAYS = ("gateway1", "gateway2")


@dataclasses.dataclass(frozen=True)
class StackPorts:
    redis: int
    nodes: tuple[int, int, int]
    gateways: tuple[int, int]

    def env(self) -> dict[str, str]:
        env = {"UNIFAAS_REDIS_PORT": str(self.redis)}
        for i, port in enumerate(self.nodes, 1):
            env[f"UNIFAAS_NODE{i}_PORT"] = str(port)
        for i, port in enumerate(self.gateways, 1):
            env[f"UNIFAAS_GATEWAY{i}_PORT"] = str(port)
        return env

    def service_of_port(self, port: int) -> str:
        services = dict(zip(self.nodes, NODES, strict=True))
        services.update(zip(self.gateways, GATEWAYS, strict=True))
        return services[port]


class ComposeStack:
    """``with ComposeStack(...) as stack``: the cluster up, then gone."""

    def __init__(
        self,
        project: str,
        ports: StackPorts,
        *,
        image: str,
        token: str,
        kvm: bool | None = None,
        settings: ContainerSettings | None = None,
    ) -> None:
        settings = settings or ContainerSettings()
        self.project, self.ports = project, ports
        self.docker = Docker(settings.docker)
        self._compose = settings.compose
        if kvm is None:
            kvm = os.path.exists("/dev/kvm")
        self.files = [COMPOSE_DIR / "compose.yaml", *([COMPOSE_DIR / "kvm.yaml"] if kvm else [])]
        self.env = {
            **os.environ,
            **ports.env(),
            "UNIFAAS_IMAGE": image,
            "UNIFAAS_TOKEN": token,
        }
        self.ids: dict[str, str] = {}

    def compose(self, *args: str, stage: str = "compose", timeout: float = 600) -> str:
        argv = [self._compose, "--no-ansi", "-p", self.project]
        for path in self.files:
            argv += ["-f", str(path)]
        return commands.run(
            [*argv, *args], stage, env=self.env, timeout=timeout, missing=DockerUnavailable
        )

    def __enter__(self) -> ComposeStack:
        try:
            self.compose("up", "--detach", "--no-build", stage="up")
        except BaseException:
            # A failed `up` may have started some: `with` does not call __exit__ when
            # __enter__ raises, so they are removed here.
            self._read_ids()
            self.close()
            raise
        self._read_ids()
        return self

    def _read_ids(self) -> None:
        for service in ("redis", *NODES, *GATEWAYS):
            try:
                found = self.compose("ps", "-q", service, stage="ps").split()
            except ContainerError:
                found = []
            if found:
                self.ids[service] = found[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.docker.remove(list(self.ids.values()))
        finally:
            self.ids.clear()
            self.compose("down", "--volumes", "--timeout", "5", stage="down")

    def logs(self, service: str, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), service, stage="logs")

    def kill(self, service: str) -> None:
        """``docker kill`` of a service's container (SIGKILL: it and everything in it)."""
        self.docker.kill(self.ids[service])

    def stop(self, service: str, timeout_s: float) -> None:
        """``docker stop``: SIGTERM (through tini), then SIGKILL after ``timeout_s``."""
        self.docker.run(
            "stop", "--time", str(int(timeout_s)), self.ids[service],
            stage="stop", timeout=timeout_s + 30,
        )  # fmt: skip

    def exit_code(self, service: str) -> int:
        return int(self.docker.container_state(self.ids[service])["ExitCode"])

    def running(self, service: str) -> bool:
        return bool(self.docker.container_state(self.ids[service]).get("Running"))
