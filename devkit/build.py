"""``unifaas build``: a manifest's build command, run in its directory with its toolchain."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

from devkit import toolchains
from devkit.errors import BuildFailed
from gateway.cli.manifest import Manifest

# The end of a failed build's output that is shown.
OUTPUT_TAIL_CHARS = 4000


@dataclasses.dataclass(frozen=True)
class Built:
    path: Path
    size: int
    seconds: float


def build(found: Manifest, *, quiet: bool = False) -> Built:
    """Run ``found``'s build; BuildFailed with the end of its output when it fails."""
    if found.build is None:
        raise BuildFailed(f"{found.path}: build: no [build] table, so nothing to run")
    spec = found.build
    env = None
    if spec.toolchain is not None:
        toolchain = toolchains.get(spec.toolchain)
        toolchain.require()
        env = toolchain.env()
    spec.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "-c", spec.command],
        cwd=found.directory,
        env=env,
        capture_output=quiet,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = ((done.stdout or "") + (done.stderr or ""))[-OUTPUT_TAIL_CHARS:]
        raise BuildFailed(
            f"{spec.command!r} exited {done.returncode}" + (f":\n{tail.rstrip()}" if tail else "")
        )
    if not spec.output.is_file():
        raise BuildFailed(f"{spec.command!r} succeeded but did not write {spec.output}")
    return Built(spec.output, spec.output.stat().st_size, seconds)
