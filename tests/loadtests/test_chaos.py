"""A short fault campaign in CI: real platform, real microVMs, serving QEMUs killed and frozen
under load, the embedded redis-server killed, and faults overlapping in one call's life (two
QEMUs killed 0.3 s apart, a kill while another QEMU is frozen, Redis killed with a QEMU).

Every call must come back answered (lost = 0); calls caught on a killed or
frozen VM ran again on another (X-Retries), and /metrics counted them.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from functions import wat_module
from loadtests.chaos import FUNCTION, Faults, deploy_echo, qemu_children, run_campaign
from loadtests.launch import platform_process

pytestmark = pytest.mark.vm


def test_killing_and_freezing_serving_vms_under_load_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A VM is given up on 1 s (the grace) after its call's 1 s timeout: the
    # freeze of 4 s outlasts both.
    extra = {
        "UNIFAAS_IDLE_TARGET": "0",
        "UNIFAAS_QUEUE_TIMEOUT_S": "60",
        "UNIFAAS_VM_CALL_GRACE_S": "1",
        # The faults are counted against the VMs the campaign set up: with the autoscaler on,
        # four clients on four slots get a VM added mid-run, and a kill that lands on it
        # while it boots is a boot failure, not one of the deaths counted below.
        "UNIFAAS_AUTOSCALE": "0",
    }
    with platform_process(state, max_vms=6, extra_env=extra) as served:
        token = (state / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.url, headers=headers, timeout=120) as http:
            deploy_echo(http, timeout_s=1.0)
            assert len(qemu_children(served.proc.pid)) == 2
            report = run_campaign(
                served.url,
                token,
                served.proc.pid,
                Faults(
                    kills=3,
                    freezes=1,
                    freeze_s=4,
                    redis_kills=1,
                    template_deletions=1,
                    double_kills=1,
                    kills_in_freeze=1,
                    redis_with_kills=1,
                ),
                clients=4,
                duration_s=14,
                progress=lambda _: None,
            )
            print(report.to_json())
            assert report.sent > 20 and len(report.faults) == 9
            assert report.lost == 0, report.failed
            assert report.retried >= 1  # three kills under four busy clients hit calls
            metrics = http.get("/metrics").text
            counted = re.search(
                rf'unifaas_invocation_retries_total{{function="{FUNCTION}"}} (\S+)', metrics
            )
            assert counted is not None and float(counted.group(1)) >= report.retried
            assert "unifaas_records_dropped_total 0.0" in metrics
            status = http.get("/v1/status").json()["pool"]
            assert status["deaths"] >= 4  # at least the first three killed and the frozen one
            assert status["retries"] >= report.retried
            # Afterwards the platform still serves, deploys and records.
            assert http.post(f"/fn/{FUNCTION}", content=b"after").content == b"after"
            deploy = http.post(
                "/v1/functions/after-chaos", files={"module": ("e.wasm", wat_module("echo"))}
            )
            assert deploy.status_code == 201, deploy.text
            assert http.post("/fn/after-chaos", content=b"new").content == b"new"
            logs = http.get(f"/v1/functions/{FUNCTION}/invocations", params={"limit": 5})
            assert len(logs.json()) == 5
