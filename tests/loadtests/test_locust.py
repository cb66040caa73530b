"""The locust scenarios, each run headless for a few seconds against a real platform.

Locust runs as a subprocess only (it monkey-patches the process with gevent).
A scenario's validation is real: locust exits 1 when any request failed its
checks or a scenario's end-of-run verdict failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.launch import Served, platform_process

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
LOADTESTS = ROOT / "loadtests"
RUN_S = 8

ENDPOINTS = {
    "warm": ["/fn/lt-echo"],
    "burst": ["/fn/lt-burst"],
    "capacity": [f"/fn/lt-cap-{c}" for c in "abcd"],
    "misbehave": ["/fn/lt-echo-ok", "/fn/lt-loop", "/fn/lt-oom", "/fn/lt-trap"],
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # 6 VMs: the capacity scenario's 8 users are more than 6 x 1 slots and its
    # functions want 12 VMs; the other scenarios fit.
    state = tmp_path_factory.mktemp("loadtest-state")
    with platform_process(state, max_vms=6, extra_env={"UNIFAAS_IDLE_TARGET": "1"}) as served:
        yield served


def run_locust(served: Served, scenario: str, out: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOADTESTS / f"{scenario}.py"),
        "--config",
        str(LOADTESTS / "locust.conf"),
        "--host",
        served.url,
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "--run-time",
        f"{RUN_S}s",
        # Calls in flight at the limit finish: under TCG on a slow machine the
        # capacity scenario's first calls wait 14 s for six boots at once.
        "--stop-timeout",
        "30",
        # The JSON is written at exit, after calls in flight at the run-time
        # limit have finished; the CSVs are rewritten once a second and may miss them.
        "--json-file",
        str(out / scenario),
    ]
    return subprocess.run(
        argv, cwd=ROOT, env=served.env, capture_output=True, text=True, timeout=90, check=False
    )


def stats(out: Path, scenario: str) -> dict[str, tuple[int, int]]:
    """Name -> (requests, failures) from locust's final JSON stats, with an "Aggregated" row."""
    entries = json.loads((out / f"{scenario}.json").read_text())
    table = {e["name"]: (int(e["num_requests"]), int(e["num_failures"])) for e in entries}
    table["Aggregated"] = (
        sum(n for n, _ in table.values()),
        sum(f for _, f in table.values()),
    )
    return table


def start_kinds(stdout: str, scenario: str) -> dict[str, int]:
    match = re.search(rf"unifaas {scenario}: start kinds: (.*)", stdout)
    assert match, stdout[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.mark.parametrize("scenario", list(ENDPOINTS))
def test_scenario_runs_clean(platform: Served, scenario: str, tmp_path: Path) -> None:
    done = run_locust(platform, scenario, tmp_path)
    tail = f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, tail

    table = stats(tmp_path, scenario)
    tail += f"\nstats: {table}"
    requests, failures = table["Aggregated"]
    assert requests > 0 and failures == 0, tail
    for endpoint in ENDPOINTS[scenario]:
        assert table.get(endpoint, (0, 0))[0] > 0, f"no requests to {endpoint}\n{tail}"

    kinds = start_kinds(done.stdout, scenario)
    assert kinds["calls"] > 0
    if scenario == "warm":
        assert kinds["warm"] >= 0.95 * kinds["calls"], kinds
    if scenario == "burst":  # its first call starts a VM; later ones queue for slots
        assert kinds["prewarmed"] + kinds["cold"] > 0, kinds
