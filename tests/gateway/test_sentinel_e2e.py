"""Redis failover under a cluster: a primary, a replica and three sentinels on loopback; two
nodes and a gateway given the ``redis+sentinel://`` URL. kill -9 of the primary under load:
warm calls keep being answered (lost = 0), async calls queued before the kill all run
(none lost), and once the sentinels have promoted the replica the cluster writes there
(deploys, heartbeats, async calls)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from functions import wat_module
from loadtests.asynccampaign import AsyncLoad
from loadtests.chaos import FUNCTION, Report, load
from loadtests.cluster import deploy_echo_everywhere, local_cluster, sentinel_group

pytestmark = pytest.mark.vm


def test_the_cluster_follows_the_new_primary_and_loses_no_call(tmp_path: Path) -> None:
    extra = {"UNIFAAS_IDLE_TARGET": "0", "UNIFAAS_AUTOSCALE": "0"}
    with (
        sentinel_group(tmp_path / "redis") as group,
        local_cluster(
            tmp_path / "cluster", nodes=2, gateways=1, max_vms=2, extra_env=extra,
            redis_url=group.url,
        ) as cluster,
    ):  # fmt: skip
        deploy_echo_everywhere(cluster)
        old_primary = group.primary_port()
        report = Report(clients=3, duration_s=0)
        queued = AsyncLoad([cluster.gateways[0].url], cluster.token)
        with load([cluster.gateways[0].url], cluster.token, 3) as tally, cluster.http() as http:
            time.sleep(2)
            queued.submit(100)  # faster than the nodes run them: a backlog at the kill
            tally.fault(10.0)
            killed_at = time.monotonic()
            os.killpg(group.primary.pid, signal.SIGKILL)
            while group.primary_port() == old_primary:
                assert time.monotonic() - killed_at < 30, "no failover in 30 s"
                time.sleep(0.2)
            failover_s = time.monotonic() - killed_at
            # The gateway writes to the new primary: a deploy goes through.
            module = {"module": ("echo.wasm", wat_module("echo"))}
            while (
                deployed := http.post("/v1/functions/after-failover", files=module)
            ).status_code != 201:
                assert deployed.status_code == 503, deployed.text
                assert time.monotonic() - killed_at < 60, deployed.text
                time.sleep(0.5)
            writable_s = time.monotonic() - killed_at
            queued.submit(50)
            time.sleep(3)
        tally.fill(report)
        async_report = queued.follow(120, killed_at)
        queued.close()
        print(json.dumps({**report.to_json(), "failover_s": failover_s, "writable_s": writable_s}))
        print(json.dumps(async_report.to_json()))
        # Every call queued before the kill, and after it, ran once, with its own response.
        assert async_report.accepted == 150, async_report.refused
        assert async_report.lost == 0, async_report.ended_otherwise
        assert async_report.recorded_twice == 0
        assert report.sent > 10
        assert report.lost == 0, report.failed
        r = httpx.post(f"{cluster.gateways[0].url}/fn/after-failover", content=b"new", timeout=60)
        assert r.status_code == 200 and r.content == b"new"
        # Both nodes beat into the new primary.
        deadline = time.monotonic() + 10
        while len(cluster.live_nodes()) != 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert http_ok(cluster.gateways[0].url, cluster.token, f"/fn/{FUNCTION}")


def http_ok(url: str, token: str, path: str) -> bool:
    r = httpx.post(url + path, content=b"ok", headers={"Authorization": f"Bearer {token}"})
    return r.status_code == 200 and r.content == b"ok"
