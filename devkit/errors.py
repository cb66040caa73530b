"""The developer tools' errors (all of them ``unifaas: error: ...`` lines in the CLI)."""

from __future__ import annotations

from wasm_runtime.errors import UnifaasError


class DevkitError(UnifaasError):
    """Root of the developer tools' errors."""


class UnknownTemplate(DevkitError):
    pass


class ToolchainMissing(DevkitError):
    """A build needs a toolchain that is not installed; the message says how to install it."""


class BuildFailed(DevkitError):
    pass
