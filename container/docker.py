"""The Docker CLI as typed calls: the one place that runs ``docker`` and reads its output.

The CLI, not a client library: what runs here is what an operator types, and the Debian
daemon (20.10) and newer clients agree on it. A failed command becomes a ContainerError
naming the command and the end of its output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from container import commands
from container.errors import ContainerError, DockerUnavailable
from container.spec import InspectedImage


class Docker:
    def __init__(self, binary: str = "docker") -> None:
        self.binary = binary

    def run(
        self,
        *args: str,
        stage: str = "docker",
        stdin: IO[bytes] | None = None,
        timeout: float = 600,
    ) -> str:
        return commands.run(
            [self.binary, *args], stage, stdin=stdin, timeout=timeout, missing=DockerUnavailable
        )

    def answers(self) -> bool:
        try:
            self.run("info", "--format", "{{.ServerVersion}}", timeout=30)
        except ContainerError:
            return False
        return True

    def inspect_image(self, ref: str) -> InspectedImage | None:
        """The image ``ref`` names, or None when there is none."""
        try:
            data = json.loads(self.run("image", "inspect", ref, stage="inspect"))
        except ContainerError as err:
            if isinstance(err, DockerUnavailable):
                raise
            return None
        first: dict[str, Any] = data[0]
        return InspectedImage.from_inspect(first)

    def import_tar(self, tarball: Path, ref: str, changes: Sequence[str]) -> str:
        """``docker import`` of a root filesystem tarball; returns the image id."""
        args = ["import"]
        for change in changes:
            args += ["--change", change]
        with tarball.open("rb") as f:
            return self.run(*args, "-", ref, stage="import", stdin=f, timeout=1800).strip()

    def images(self, label: str) -> list[tuple[str, str]]:
        """(id, repository:tag) of the images carrying ``label``, newest first."""
        out = self.run(
            "image", "ls", "--filter", f"label={label}",
            "--format", "{{.ID}} {{.Repository}}:{{.Tag}}", stage="images",
        )  # fmt: skip
        return [(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()]

    def remove_images(self, refs: Sequence[str]) -> None:
        if refs:
            self.run("image", "rm", *refs, stage="remove images")

    def tag(self, source: str, target: str) -> None:
        self.run("tag", source, target, stage="tag")

    def kill(self, container: str) -> None:
        self.run("kill", container, stage="kill")

    def remove(self, containers: Sequence[str]) -> None:
        """Remove containers (running or not) and their anonymous volumes."""
        if containers:
            self.run("rm", "--force", "--volumes", *containers, stage="remove", timeout=120)

    def container_state(self, container: str) -> dict[str, Any]:
        data = json.loads(self.run("inspect", container, stage="inspect"))
        state: dict[str, Any] = data[0]["State"]
        return state
