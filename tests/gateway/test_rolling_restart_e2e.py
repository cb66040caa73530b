"""A rolling restart of the local cluster under load: every node and then every gateway is
stopped with SIGTERM (it drains), started again and waited for, one at a time, while four
clients call through both gateways, failing over on a refused connection as a load
balancer in front of the gateways would. Not one call may fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.chaos import qemu_children
from loadtests.cluster import deploy_echo_everywhere, local_cluster, rolling_restart_campaign

pytestmark = pytest.mark.vm


def test_restarting_every_node_then_every_gateway_fails_no_call(tmp_path: Path) -> None:
    extra = {"UNIFAAS_IDLE_TARGET": "0", "UNIFAAS_QUEUE_TIMEOUT_S": "60"}
    with local_cluster(tmp_path, max_vms=2, extra_env=extra) as cluster:
        deploy_echo_everywhere(cluster)
        report = rolling_restart_campaign(cluster, clients=4)
        print(json.dumps(report.__dict__))
        assert len(report.restarted) == 5  # three nodes, two gateways
        assert report.failed == {} and report.lost == 0
        assert report.sent > 50 and report.answered == report.sent
        with cluster.http(1) as http:  # the cluster serves as before
            assert http.post("/fn/chaos-echo", content=b"after").content == b"after"
    for served in (*cluster.nodes, *cluster.gateways):
        assert served.proc.poll() is not None
        assert not qemu_children(served.proc.pid)
