"""Errors of the benchmark harness and the server launcher (listed in wasm_runtime.errors)."""

from __future__ import annotations

from wasm_runtime.errors import UnifaasError


class HarnessError(UnifaasError):
    """Root of the harness's errors."""


class LaunchError(HarnessError):
    """The child server exited early or never answered /healthz."""


class BenchError(HarnessError):
    """A benchmark could not run as planned (a server did not start, a wrong start kind)."""
