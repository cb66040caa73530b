"""Scenario 2, a burst that needs new VMs: a stepped ramp on a freshly deployed echo.

``lt-burst`` is redeployed before every run (a new version, so no VM is bound
to it yet) and takes one call per VM (concurrency 1, up to 4 VMs). The
:class:`StepBurst` shape starts with one user, then jumps to half and then all
of ``--users``, so each step needs VMs that are not there: the generic idle VM
is taken by the first call (``prewarmed``); once the version has a VM, calls past
its slots queue while further VMs start, one at a time up to 4, and each takes the
first of a freed slot or a new VM (``warm``). Start kinds are counted from
``X-Start`` and printed at the end.

Success: every call is 200 with the body echoed, ``X-Exit-Code: 0`` and an
``X-Start``; and at least one call was not warm (the burst really forced
starts). ``--users`` and ``--run-time`` scale the shape (default 16 users, 30 s).

    make loadtest SCENARIO=burst
"""

from __future__ import annotations

import itertools

from locust import LoadTestShape, constant, task
from unifaas_locust import Tally, UnifaasUser, add_verdict, use_scenario

_ids = itertools.count()

use_scenario("burst")


class BurstEchoUser(UnifaasUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.me = next(_ids)

    @task
    def echo(self) -> None:
        self.call_echo("lt-burst", f"burst user {self.me}".encode())


class StepBurst(LoadTestShape):
    """1 user for the first quarter of the run, half the users next, then all; then stop."""

    use_common_options = True  # read --users and --run-time instead of ignoring them
    default_users = 16
    default_run_time_s = 30.0

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        users = getattr(options, "num_users", None) or self.default_users
        total = getattr(options, "run_time", None) or self.default_run_time_s
        now = self.get_run_time()
        if now >= total:
            return None
        if now < total * 0.25:
            return 1, 1.0
        if now < total * 0.5:
            return max(1, users // 2), float(users)  # all at once: a burst, not a ramp
        return users, float(users)


def _forced_starts(tally: Tally) -> str | None:
    if tally.calls == 0:
        return "no calls were made"
    if tally.starts["prewarmed"] + tally.starts["cold"] == 0:
        return "every call was warm: the burst forced no pre-warmed or cold start"
    return None


add_verdict(_forced_starts)
