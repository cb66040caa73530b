"""Errors of the container image's build and stack (listed in wasm_runtime.errors)."""

from __future__ import annotations

from wasm_runtime.errors import UnifaasError


class ContainerError(UnifaasError):
    """The image could not be built, or its stack could not run; ``stage`` says where."""

    def __init__(self, stage: str, message: str, output_tail: str = "") -> None:
        text = f"{stage}: {message}"
        if output_tail:
            text += "\n--- output tail ---\n" + output_tail
        super().__init__(text)
        self.stage = stage
        self.output_tail = output_tail


class DockerUnavailable(ContainerError):
    """No Docker daemon answers (``scripts/dockerd.sh start`` starts one)."""
