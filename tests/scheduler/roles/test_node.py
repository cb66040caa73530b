"""A node composed for real: embedded redis-server, guest image, pool of QEMU microVMs, heartbeat;
all of it stopped on the way out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.model import FunctionConfig, InvokeRequest
from scheduler.roles.node import Node
from scheduler.settings import NodeSettings, PoolSettings
from tests.conftest import wasm
from tests.vms import running
from unikernel.settings import VMSettings

pytestmark = pytest.mark.vm


async def test_node_serves_beats_and_stops_everything(
    tmp_path: Path, vm_settings: VMSettings
) -> None:
    settings = NodeSettings(state_dir=tmp_path / "state", heartbeat_s=0.2)
    pool = PoolSettings(max_vms=2, idle_target=0)
    async with Node(settings, pool, vm_settings, url="http://node.test:1") as node:
        assert node.embedded_redis is not None and node.embedded_redis.pid is not None
        redis_pid = node.embedded_redis.pid
        platform = node.platform
        await platform.deploy("echo", wasm("echo"), FunctionConfig())
        outcome = await platform.invoke("echo", InvokeRequest("POST", "", "", [], b"hi node"))
        assert (outcome.error, outcome.body) == (None, b"hi node")
        [record] = await platform.registry.list_nodes()
        assert (record.id, record.url) == (node.id, "http://node.test:1")
        assert record.pid == os.getpid() and record.max_vms == platform.pool.max_vms
        qemu_pids = [
            vm.sandbox.pid  # type: ignore[attr-defined]
            for vm in platform.pool._vms.values()
            if vm.sandbox is not None
        ]
        assert qemu_pids
    assert not running(redis_pid)
    assert [pid for pid in qemu_pids if running(pid)] == []
