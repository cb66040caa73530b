"""The one way the container package runs a program: build steps, ``docker`` and
``docker-compose`` alike. A failure becomes a ContainerError naming the step, the command
and the end of what it printed; a missing program or daemon, a DockerUnavailable where the
caller says so."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import IO

from container.errors import ContainerError, DockerUnavailable

TAIL_CHARS = 2000
NO_DAEMON = "Cannot connect to the Docker daemon"


def run(
    argv: list[str],
    stage: str,
    *,
    stdin: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
    missing: type[ContainerError] = ContainerError,
) -> str:
    """Run ``argv`` to its end; its standard output, or a ContainerError (``missing`` when
    the program is not installed)."""
    try:
        done = subprocess.run(
            argv, stdin=stdin, env=env, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise missing(
            stage, f"{argv[0]} is not installed (scripts/dockerd.sh start installs it)"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise ContainerError(stage, f"`{' '.join(argv[:4])}` took over {timeout:g} s") from err
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        if NO_DAEMON in output:
            raise DockerUnavailable(
                stage, "no Docker daemon answers (scripts/dockerd.sh start starts one)"
            )
        raise ContainerError(
            stage, f"`{' '.join(argv[:4])}` exited with {done.returncode}", output[-TAIL_CHARS:]
        )
    return done.stdout.decode(errors="replace")
