"""Errors of the unikernel layer; all derive from ``wasm_runtime.errors.UnikernelError``."""

from __future__ import annotations

from collections.abc import Sequence

from wasm_runtime.errors import UnikernelError


class ImageBuildError(UnikernelError):
    """A part of the guest image could not be built.

    ``part`` is what was being built (``image``: the agent initramfs, ``kernel``,
    ``floor init``), ``stage`` the step that failed, ``log_tail`` its output.
    """

    def __init__(
        self, stage: str, message: str, log_tail: str = "", *, part: str = "image"
    ) -> None:
        text = f"{part} build failed at {stage}: {message}"
        if log_tail:
            text += "\n--- log tail ---\n" + log_tail
        super().__init__(text)
        self.part = part
        self.stage = stage
        self.log_tail = log_tail


class VMLaunchError(UnikernelError):
    """QEMU did not get as far as a ready agent."""

    def __init__(
        self, message: str, exitcode: int | None, argv: Sequence[str], log_tail: str
    ) -> None:
        detail = f"\n--- console/stderr tail ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{message} (exit code {exitcode}){detail}")
        self.exitcode = exitcode
        self.argv = list(argv)
        self.log_tail = log_tail


class VMGone(UnikernelError):
    """The VM (QEMU process or agent) is no longer there; pending calls fail with this."""

    def __init__(self, reason: str, exitcode: int | None = None) -> None:
        super().__init__(f"VM gone: {reason}")
        self.reason = reason
        self.exitcode = exitcode


class AgentUnresponsive(VMGone):
    """A call outlived its deadline; the VM is considered hung and is killed."""


class QMPCommandError(UnikernelError):
    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"QMP {command} failed: {message}")
        self.command = command


class ConfinementError(UnikernelError):
    """The host cannot apply a confinement measure (a cgroup, the VM user, ...)."""
