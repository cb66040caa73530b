"""What every ``unifaas`` command shares, whichever package registers it: the registrar's
interface, progress lines, and a call's inputs as a user gives them (a body, K=V pairs,
a files directory) for ``run``, ``invoke`` and ``deploy``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Protocol

from wasm_runtime.bundle import pack_directory
from wasm_runtime.errors import UsageError


class Commands(Protocol):
    """How a package adds its commands to the CLI (implemented by gateway.cli.Registrar)."""

    def command(
        self, name: str, help: str, description: str | None = None, group: str | None = None
    ) -> argparse.ArgumentParser: ...


def progress(message: str) -> None:
    """A progress line for a person: stderr, so stdout stays the command's result."""
    print(message, file=sys.stderr, flush=True)


def env_pair(text: str) -> tuple[str, str]:
    """argparse type of ``--env K=V``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def read_data(spec: str | None) -> bytes:
    """A body from ``--data``: literal text, ``@FILE`` or ``-`` for stdin."""
    if spec is None:
        return b""
    if spec == "-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        return read_file(spec[1:])
    return spec.encode()


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err


def files_bundle(directory: str) -> bytes:
    """A files bundle (tar) from ``--files DIR``."""
    path = Path(directory)
    if not path.is_dir():
        raise UsageError(f"--files {directory} is not a directory")
    return pack_directory(path)
