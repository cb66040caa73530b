"""Metrics and dashboard data through the in-process app (fake sandbox, real runner)."""

from __future__ import annotations

import httpx
import pytest

from gateway.metrics import telemetry
from gateway.metrics.observation import Observation
from gateway.metrics.telemetry import Telemetry
from scheduler.model import Admission
from tests.gateway.conftest import deploy


async def test_metrics_and_dashboard_data(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    await deploy(client, "trap", "misbehave", args=["trap"])
    for _ in range(3):
        assert (await client.post("/fn/echo", content=b"x")).status_code == 200
    assert (await client.post("/fn/trap")).status_code == 500

    text = (await client.get("/metrics")).text
    echo = 'unifaas_invocations_total{abi="raw",function="echo",outcome="ok",start='
    assert echo + '"warm"} 2.0' in text and echo + '"cold"} 1.0' in text
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


async def test_the_autoscaler_s_decisions_are_shown(client: httpx.AsyncClient) -> None:
    await deploy(client, "echo", "echo")
    assert (await client.post("/fn/echo", content=b"x")).status_code == 200
    platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    throttle = platform.throttle
    # Calls in flight for the autoscaler to see: its own tick, with a busy function.
    limits = Admission(max_in_flight=10)
    with throttle.admit("echo", limits), throttle.admit("echo", limits):
        for _ in range(2):
            await platform.autoscaler.tick()
    decision = platform.autoscaler.decisions["echo"]
    data = (await client.get("/dashboard/data")).json()
    (echo,) = data["functions"]
    assert (echo["wanted"], echo["panic"]) == (decision.desired, decision.panic)
    text = (await client.get("/metrics")).text
    assert f'unifaas_autoscaler_desired_vms{{function="echo"}} {float(decision.desired)}' in text
    assert 'unifaas_autoscaler_in_flight{function="echo"} 2.0' in text


def test_the_latency_window_holds_a_minute_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody reads the dashboard: the window still forgets calls older than a minute."""
    now = [1000.0]
    monkeypatch.setattr(telemetry.time, "time", lambda: now[0])
    seen = Telemetry(None)
    call = Observation("f", "raw", "ok", "warm", 200, None, 1.0, 0.5, 0)
    for _ in range(10_000):  # a call every 10 ms for 100 s
        seen.observe(call)
        now[0] += 0.01
    assert len(seen._window) <= telemetry.LATENCY_WINDOW_S / 0.01 + 1
