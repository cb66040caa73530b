"""Deploy (and afterwards delete) the functions a load-test scenario needs.

Used by the locustfiles' ``test_start``/``test_stop`` hooks, and by hand:

    .venv/bin/python loadtests/deploy.py warm|burst|capacity|misbehave [--url URL] [--delete]

Every function is named ``lt-*`` so a scenario never touches the user's own
functions; the module comes from the WAT sources in ``functions/``. The token
is ``$UNIFAAS_TOKEN``, else ``token`` in ``$UNIFAAS_STATE_DIR`` (default
``~/.local/state/unifaas``), found the way the CLI finds it (gateway.cli.client).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from functions import wat_module
from gateway.cli.client import token_of
from gateway.settings import ClientSettings


@dataclass(frozen=True)
class Fn:
    """One function to deploy: a module name in functions/ and its config (FunctionConfig keys)."""

    name: str
    module: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def slots(self) -> int:
        return int(self.config.get("max_vms", 4)) * int(self.config.get("concurrency", 4))


# Capacity: four echo copies, one call per VM, up to 3 VMs each: 12 VMs wanted,
# more than a default node's 8 (or the test's 4), so calls queue and VMs get evicted.
CAPACITY_FUNCTIONS = [f"lt-cap-{c}" for c in "abcd"]

SCENARIOS: dict[str, list[Fn]] = {
    # Two VMs kept loaded (min_warm), 8 calls in flight each: 16 warm slots.
    "warm": [Fn("lt-echo", "echo", {"min_warm": 2, "max_vms": 2, "concurrency": 8})],
    # One call per VM: every extra concurrent user needs another VM (pre-warmed or cold).
    "burst": [Fn("lt-burst", "echo", {"max_vms": 4, "concurrency": 1})],
    "capacity": [
        Fn(name, "echo", {"max_vms": 3, "concurrency": 1, "keep_alive_s": 30})
        for name in CAPACITY_FUNCTIONS
    ],
    # misbehave reads its mode from argv, so each mode is its own function.
    "misbehave": [
        Fn("lt-echo-ok", "echo", {"max_vms": 2, "concurrency": 4}),
        Fn("lt-loop", "misbehave", {"args": ["loop"], "timeout_s": 1.0, "max_vms": 1}),
        Fn("lt-oom", "misbehave", {"args": ["oom"], "memory_mib": 8, "max_vms": 1}),
        Fn("lt-trap", "misbehave", {"args": ["trap"], "max_vms": 1}),
    ],
}

WARM_UP_DEADLINE_S = 90.0


def module_bytes(module: str) -> bytes:
    return wat_module(module)


def _client(url: str | None, token: str | None) -> httpx.Client:
    settings = ClientSettings()
    token = token or token_of(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=(url or settings.url).rstrip("/"), headers=headers, timeout=120)


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")


def prepare(scenario: str, url: str | None = None, token: str | None = None) -> list[Fn]:
    """Deploy a fresh version of every function of ``scenario``; warm them up where it matters."""
    fns = SCENARIOS[scenario]
    with _client(url, token) as http:
        for fn in fns:
            response = http.post(
                f"/v1/functions/{fn.name}",
                files={"module": (f"{fn.module}.wasm", module_bytes(fn.module))},
                data={"config": json.dumps(fn.config)},
            )
            _check(response, f"deploy {fn.name}")
        if scenario == "warm":
            warm_up(http, fns[0])
    return fns


def warm_up(http: httpx.Client, fn: Fn) -> None:
    """Call ``fn`` with all its slots at once until a whole round is served warm."""
    deadline = time.monotonic() + WARM_UP_DEADLINE_S

    def one(_: int) -> str:
        response = http.post(f"/fn/{fn.name}", content=b"warm-up")
        _check(response, f"warm-up call to {fn.name}")
        return response.headers.get("x-start", "")

    with concurrent.futures.ThreadPoolExecutor(fn.slots) as pool:
        while time.monotonic() < deadline:
            if all(start == "warm" for start in pool.map(one, range(fn.slots))):
                return
    raise RuntimeError(f"{fn.name} was not warm after {WARM_UP_DEADLINE_S:g}s")


def cleanup(scenario: str, url: str | None = None, token: str | None = None) -> None:
    """Delete the scenario's functions (their VMs are drained), ignoring ones already gone."""
    with _client(url, token) as http:
        for fn in SCENARIOS[scenario]:
            response = http.delete(f"/v1/functions/{fn.name}")
            if response.status_code != 404:
                _check(response, f"delete {fn.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", help="platform URL (default $UNIFAAS_URL or the local one)")
    parser.add_argument("--delete", action="store_true", help="delete instead of deploying")
    args = parser.parse_args(argv)
    if args.delete:
        cleanup(args.scenario, args.url)
    else:
        for fn in prepare(args.scenario, args.url):
            print(f"deployed {fn.name} ({fn.module}, {json.dumps(fn.config)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
