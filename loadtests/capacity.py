"""Scenario 3, more calls than the node has room for: a mix of functions past the VM capacity.

Four echo copies (``lt-cap-a`` .. ``lt-cap-d``) each take one call per VM and
may use up to 3 VMs: 12 VMs wanted, more than a node's ``max_vms`` (8 by
default, 4 in the tests), and every user keeps one call in flight, so with more
users than ``max_vms`` x 1 calls queue for a slot, and idle VMs of one
function are evicted to boot VMs for another.

Success: every call is 200 with its body echoed, ``X-Exit-Code: 0`` and an
``X-Start``, however long it queued. A ``503`` of kind ``capacity`` that
carries ``Retry-After`` is the platform's documented back-pressure (queue full
or the queue wait over ``UNIFAAS_QUEUE_TIMEOUT_S``): it counts as a success as
long as such answers stay within 5% of the calls (reckoned over at least 20
calls, so one early 503 is allowed); every 503 beyond that, and every other
error, is a failure.

    make loadtest SCENARIO=capacity
"""

from __future__ import annotations

import itertools

from deploy import CAPACITY_FUNCTIONS
from locust import constant, task
from unifaas_locust import UnifaasUser, use_scenario

_ids = itertools.count()

use_scenario("capacity")


class CapacityUser(UnifaasUser):
    """Each user sticks to one function (round robin over users) and keeps a call in flight."""

    wait_time = constant(0)
    tolerated_503_fraction = 0.05

    def on_start(self) -> None:
        self.me = next(_ids)
        self.function = CAPACITY_FUNCTIONS[self.me % len(CAPACITY_FUNCTIONS)]
        self.n = 0

    @task
    def call_own_function(self) -> None:
        self.n += 1
        self.call_echo(self.function, f"{self.function} user {self.me} call {self.n}".encode())
