"""What every unifaas locustfile shares: the validating base user, start-kind tally, deploy hooks.

Each scenario module calls :func:`use_scenario` once; it deploys the
scenario's ``lt-*`` functions on ``test_start`` (a fresh version every run, so
starts are predictable), deletes them on ``test_stop``, and prints the start
kinds seen (``X-Start``) when locust quits. A scenario may add its own
end-of-run verdict with :func:`add_verdict`; a failed verdict makes locust
exit with 1, like a failed request does.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import deploy
import gevent
from locust import HttpUser, events
from locust.env import Environment

log = logging.getLogger("unifaas.loadtest")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

# Exit codes the platform reports for failed calls (wasm_runtime/types.py).
EXIT_TIMEOUT, EXIT_TRAP, EXIT_OOM = "124", "134", "137"
START_KINDS = ("warm", "prewarmed", "cold")


@dataclass(frozen=True)
class Expect:
    """What a correct answer looks like; ``None`` fields are not checked."""

    status: int = 200
    kind: str | None = None  # error.kind of a JSON error body
    body: bytes | None = None  # exact body of a success
    exit_code: str | None = "0"  # X-Exit-Code
    start: bool = True  # X-Start must be warm/prewarmed/cold


class Tally:
    """Counters shared by all users of this process (gevent: no real threads, but be safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.starts: collections.Counter[str] = collections.Counter()
        self.calls = 0
        self.capacity_rejections = 0

    def add_call(self, start: str | None) -> None:
        with self._lock:
            self.calls += 1
            if start:
                self.starts[start] += 1

    def try_tolerate_rejection(self, fraction: float, floor: int) -> bool:
        """Count one 503 as tolerated if the rejected share stays within ``fraction``."""
        with self._lock:
            if self.capacity_rejections + 1 <= fraction * max(self.calls, floor):
                self.capacity_rejections += 1
                return True
            return False

    def summary(self) -> str:
        kinds = " ".join(f"{k}={self.starts[k]}" for k in START_KINDS)
        return f"{kinds} calls={self.calls} capacity_503_tolerated={self.capacity_rejections}"


TALLY = Tally()
Verdict = Callable[[Tally], str | None]  # None when fine, else what went wrong
_verdicts: list[Verdict] = []


def add_verdict(verdict: Verdict) -> None:
    _verdicts.append(verdict)


def check(response: Any, expect: Expect) -> str | None:
    """What is wrong with ``response`` (a locust response), or None."""
    status = response.status_code
    if status != expect.status:
        return f"HTTP {status}, want {expect.status}: {response.text[:200]!r}"
    headers = response.headers
    if not headers.get("x-invocation-id"):
        return "no X-Invocation-Id"
    exit_code = headers.get("x-exit-code")
    if exit_code is None or not exit_code.lstrip("-").isdigit():
        return f"X-Exit-Code missing or not a number: {exit_code!r}"
    if expect.exit_code is not None and exit_code != expect.exit_code:
        return f"X-Exit-Code {exit_code}, want {expect.exit_code}"
    start = headers.get("x-start")
    if expect.start and start not in START_KINDS:
        return f"X-Start {start!r}, want one of {START_KINDS}"
    if expect.kind is not None:
        kind = error_kind(response)
        if kind != expect.kind:
            return f"error kind {kind!r}, want {expect.kind!r}"
    if expect.body is not None and response.content != expect.body:
        return f"body {response.content[:80]!r}, want {expect.body[:80]!r}"
    return None


def error_kind(response: Any) -> str | None:
    try:
        error = json.loads(response.content)["error"]
        return str(error["kind"]) if error.get("message") else None
    except (ValueError, KeyError, TypeError):
        return None


class UnifaasUser(HttpUser):
    """Base of every scenario's users: one helper that invokes a function and validates it."""

    abstract = True
    # A tolerated 503 (capacity, with Retry-After) needs this share of all calls or fewer;
    # 0 means any 503 is a failure. ``floor``: the share is taken of at least this many calls.
    tolerated_503_fraction = 0.0
    tolerated_503_floor = 20

    def invoke(self, function: str, body: bytes = b"", expect: Expect | None = None) -> None:
        expect = expect or Expect()
        with self.client.post(
            f"/fn/{function}", data=body, name=f"/fn/{function}", catch_response=True
        ) as response:
            if self._tolerated_capacity(response):
                TALLY.add_call(None)
                response.success()
                return
            TALLY.add_call(response.headers.get("x-start"))
            problem = check(response, expect)
            if problem is None:
                response.success()
            else:
                response.failure(problem)

    def _tolerated_capacity(self, response: Any) -> bool:
        return (
            response.status_code == 503
            and self.tolerated_503_fraction > 0
            and error_kind(response) == "capacity"
            and response.headers.get("retry-after", "").isdigit()
            and TALLY.try_tolerate_rejection(self.tolerated_503_fraction, self.tolerated_503_floor)
        )

    def call_echo(self, function: str, payload: bytes) -> None:
        self.invoke(function, payload, Expect(body=payload))


def use_scenario(scenario: str) -> None:
    """Deploy ``scenario``'s functions before the run, delete them after it, report at the end.

    The first deployment happens at ``init``, before locust starts its
    ``--run-time`` clock; a later run in the web UI deploys again on ``test_start``.
    """
    deployed = False

    def _deploy(environment: Environment) -> bool:
        nonlocal deployed
        try:
            fns = deploy.prepare(scenario, environment.host)
        except Exception as err:  # any failure: say why and stop
            log.error("deploying the %s scenario failed: %s", scenario, err)
            environment.process_exit_code = 1
            return False
        deployed = True
        log.info("%s: deployed %s", scenario, ", ".join(fn.name for fn in fns))
        return True

    @events.init.add_listener
    def _on_init(environment: Environment, **_: Any) -> None:
        if not _deploy(environment):
            raise SystemExit(1)

    @events.test_start.add_listener
    def _on_test_start(environment: Environment, **_: Any) -> None:
        if not deployed and not _deploy(environment) and environment.runner is not None:
            gevent.spawn(environment.runner.quit)  # not from inside the starting greenlet

    @events.test_stop.add_listener
    def _on_test_stop(environment: Environment, **_: Any) -> None:
        nonlocal deployed
        deployed = False
        try:
            deploy.cleanup(scenario, environment.host)
        except Exception as err:
            log.warning("deleting the %s scenario's functions failed: %s", scenario, err)

    @events.quitting.add_listener
    def _report(environment: Environment, **_: Any) -> None:
        print(f"unifaas {scenario}: start kinds: {TALLY.summary()}", flush=True)
        for verdict in _verdicts:
            problem = verdict(TALLY)
            if problem is not None:
                print(f"unifaas {scenario}: FAILED: {problem}", flush=True)
                environment.process_exit_code = 1
