"""The compose stack's teardown by ids, on the path where `up` itself fails (fake
docker-compose and docker binaries record what they are asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.errors import ContainerError
from container.settings import ContainerSettings
from container.stack import ComposeStack, StackPorts


def _fake(path: Path, log: Path, body: str) -> str:
    path.write_text(f'#!/bin/sh\necho "$(basename $0) $*" >> {log}\n{body}\n')
    path.chmod(0o755)
    return str(path)


def test_a_failed_up_still_removes_what_it_started_by_id(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    compose = _fake(
        tmp_path / "compose",
        log,
        'case "$*" in\n'
        '  *" up "*) echo "node2 failed to start" >&2; exit 1;;\n'
        '  *" ps -q node1"*) echo started-node1;;\n'
        '  *" ps -q redis"*) echo started-redis;;\n'
        "esac\nexit 0",
    )
    docker = _fake(tmp_path / "docker", log, "exit 0")
    settings = ContainerSettings(compose=compose, docker=docker, cache_dir=tmp_path)
    stack = ComposeStack(
        "p1", StackPorts(1, (2, 3, 4), (5, 6)), image="i", token="t", kvm=False, settings=settings
    )
    with pytest.raises(ContainerError, match="exited with 1"), stack:
        pytest.fail("the body must not run")
    calls = log.read_text().splitlines()
    assert "docker rm --force --volumes started-redis started-node1" in calls
    assert calls[-1].startswith("compose ") and " down --volumes" in calls[-1]
    assert stack.ids == {}
