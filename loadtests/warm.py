"""Scenario 1, steady warm load: every user calls ``lt-echo`` at a steady pace.

``lt-echo`` keeps two VMs loaded (min_warm 2, 8 calls in flight each) and is
warmed up before the users start. Success: every call is 200 with the body
echoed, ``X-Exit-Code: 0`` and an ``X-Start``; and at least 95% of the calls
were served warm (a scale-out may still add a VM).

    make loadtest SCENARIO=warm
"""

from __future__ import annotations

import itertools

from locust import constant_throughput, task
from unifaas_locust import Tally, UnifaasUser, add_verdict, use_scenario

MIN_WARM_SHARE = 0.95
_ids = itertools.count()

use_scenario("warm")


class WarmEchoUser(UnifaasUser):
    wait_time = constant_throughput(10)  # calls per second per user, at most

    def on_start(self) -> None:
        self.me = next(_ids)
        self.n = 0

    @task
    def echo_small(self) -> None:
        self.n += 1
        self.call_echo("lt-echo", f"user {self.me} call {self.n}".encode())


def _mostly_warm(tally: Tally) -> str | None:
    if tally.calls == 0:
        return "no calls were made"
    share = tally.starts["warm"] / tally.calls
    if share < MIN_WARM_SHARE:
        return f"only {share:.0%} of the calls were warm (want >= {MIN_WARM_SHARE:.0%})"
    return None


add_verdict(_mostly_warm)
