"""Metrics and dashboard data through the in-process app (fake sandbox, real runner)."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import deploy


async def test_metrics_and_dashboard_data(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    await deploy(client, "trap", "misbehave", args=["trap"])
    for _ in range(3):
        assert (await client.post("/fn/echo", content=b"x")).status_code == 200
    assert (await client.post("/fn/trap")).status_code == 500

    text = (await client.get("/metrics")).text
    assert 'unifaas_invocations_total{function="echo",outcome="ok",start="warm"} 2.0' in text
    assert 'unifaas_invocations_total{function="echo",outcome="ok",start="cold"} 1.0' in text
    assert 'unifaas_errors_total{kind="trap"} 1.0' in text
    assert 'unifaas_vms{state="bound"} 2.0' in text
    assert "unifaas_invocation_seconds_bucket" in text
    assert "unifaas_invocation_vm_seconds_count" in text
    assert "unifaas_vm_boots_total 2.0" in text

    data = (await client.get("/dashboard/data")).json()
    assert data["totals"]["invocations"] == 4 and data["totals"]["errors"] == 1
    assert data["totals"]["starts"] == {"warm": 2, "prewarmed": 0, "cold": 2}
    assert data["latency_ms"]["count"] == 4 and data["latency_ms"]["p50"] > 0
    assert [f["key"] for f in data["functions"]] == ["echo@1", "trap@1"]
    assert data["recent_errors"][0]["kind"] == "trap"
    assert data["pool"]["bound"] == 2

    assert (await client.get("/dashboard/static/../app.py")).status_code == 404
    assert (await client.get("/dashboard/static/nope.js")).status_code == 404
