"""Scenario 4, misbehaving functions next to a well-behaved one.

``lt-loop`` spins forever under a 1 s timeout, ``lt-oom`` grows its memory
past an 8 MiB cap, ``lt-trap`` hits ``unreachable``; ``lt-echo-ok`` is plain
echo. Success for a misbehaving call is exactly the documented error: HTTP
status, JSON ``error.kind``, ``X-Exit-Code`` and an ``X-Start``:

    lt-loop  504 timeout        exit 124
    lt-oom   500 out_of_memory  exit 137
    lt-trap  500 trap           exit 134

and every echo call must still be 200 with its body echoed and exit 0, so a
misbehaving function never breaks its neighbours. Any other answer is a failure.

    make loadtest SCENARIO=misbehave
"""

from __future__ import annotations

import itertools

from locust import between, task
from unifaas_locust import (
    EXIT_OOM,
    EXIT_TIMEOUT,
    EXIT_TRAP,
    Expect,
    UnifaasUser,
    use_scenario,
)

_ids = itertools.count()

use_scenario("misbehave")


# Each misbehaving user goes round this cycle, every user from a different place
# in it, so even a short run with a few users calls all three.
CYCLE = ["trap", "oom", "trap", "loop", "trap", "oom"]
EXPECTED = {
    "loop": Expect(504, kind="timeout", exit_code=EXIT_TIMEOUT),
    "oom": Expect(500, kind="out_of_memory", exit_code=EXIT_OOM),
    "trap": Expect(500, kind="trap", exit_code=EXIT_TRAP),
}


class MisbehavingUser(UnifaasUser):
    """Calls the three broken functions; a loop call holds its VM for the whole 1 s timeout."""

    weight = 1
    wait_time = between(0.1, 0.3)

    def on_start(self) -> None:
        me = next(_ids)
        self.modes = itertools.cycle(CYCLE[me % len(CYCLE) :] + CYCLE[: me % len(CYCLE)])

    @task
    def misbehave(self) -> None:
        mode = next(self.modes)
        self.invoke(f"lt-{mode}", expect=EXPECTED[mode])


class WellBehavedUser(UnifaasUser):
    """Plain echo traffic that must keep succeeding next to the broken functions."""

    weight = 1
    wait_time = between(0.0, 0.1)

    def on_start(self) -> None:
        self.me = next(_ids)
        self.n = 0

    @task
    def echo(self) -> None:
        self.n += 1
        self.call_echo("lt-echo-ok", f"neighbour {self.me} call {self.n}".encode())
