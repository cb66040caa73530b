"""Async calls under faults, counted: submit calls with ``Prefer: respond-async`` through the
gateways, break something midway (kill -9 a node, kill Redis's primary), then follow every
accepted call to its end and check it ended once, ``succeeded``, with its own response.

A call is *lost* when it was accepted (202) and did not end ``succeeded`` with its own
body by the deadline; *recorded twice* when its ending changed after it was first seen
(a second node's ending overwrote the first).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from loadtests.chaos import FUNCTION
from loadtests.errors import BenchError
from scheduler.state.keys import ASYNC_GROUP, async_call_key, async_queue_key

ENDED = {"succeeded", "failed", "dead"}
POLL_S = 0.25


@dataclasses.dataclass
class AsyncReport:
    sent: int = 0
    accepted: int = 0  # 202
    refused: dict[str, int] = dataclasses.field(default_factory=dict)  # not 202, by status
    succeeded: int = 0  # with its own response
    ended_otherwise: dict[str, int] = dataclasses.field(default_factory=dict)  # by status
    retried: int = 0  # ended after more than one attempt
    recorded_twice: int = 0
    lost: int = 0
    faults: list[str] = dataclasses.field(default_factory=list)
    all_ended_s: float = 0.0  # from the fault to the last call's end

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Submitted:
    id: str
    body: bytes


class AsyncLoad:
    """Calls submitted round-robin through ``urls``, then followed to their end."""

    def __init__(self, urls: list[str], token: str, function: str = FUNCTION) -> None:
        self.urls = urls
        self.function = function
        self.report = AsyncReport()
        self.calls: list[Submitted] = []
        self._http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"})
        self._run = secrets.token_hex(4)

    def close(self) -> None:
        self._http.close()

    def submit(self, count: int) -> None:
        for _ in range(count):
            i = self.report.sent
            body = f"async {self._run} {i}".encode()
            self.report.sent += 1
            try:
                r = self._http.post(
                    f"{self.urls[i % len(self.urls)]}/fn/{self.function}",
                    content=body,
                    headers={"Prefer": "respond-async"},
                )
            except httpx.HTTPError as err:
                self._count(self.report.refused, type(err).__name__)
                continue
            if r.status_code != 202:
                self._count(self.report.refused, str(r.status_code))
                continue
            self.report.accepted += 1
            self.calls.append(Submitted(r.json()["id"], body))

    def follow(self, timeout_s: float, fault_at: float | None = None) -> AsyncReport:
        """Every accepted call to its end (or the deadline), then each one checked."""
        first_end: dict[str, tuple[float, str]] = {}
        ended: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(ended) < len(self.calls) and time.monotonic() < deadline:
            for call in self.calls:
                if call.id in ended:
                    continue
                view = self._view(call.id)
                if view is not None and view["status"] in ENDED:
                    ended[call.id] = view
                    first_end[call.id] = (view["finished_at"], view["node"])
            if len(ended) < len(self.calls):
                time.sleep(POLL_S)
        if fault_at is not None:
            self.report.all_ended_s = round(time.monotonic() - fault_at, 2)
        for call in self.calls:
            self._check(call, ended.get(call.id), first_end.get(call.id))
        return self.report

    def _check(
        self, call: Submitted, view: dict[str, Any] | None, first: tuple[float, str] | None
    ) -> None:
        report = self.report
        if view is None:
            report.lost += 1
            self._count(report.ended_otherwise, "not ended")
            return
        if view["attempts"] > 1:
            report.retried += 1
        again = self._view(call.id)
        if again is None or (again["finished_at"], again["node"]) != first:
            report.recorded_twice += 1
        if view["status"] != "succeeded":
            report.lost += 1
            self._count(report.ended_otherwise, view["status"])
            return
        url = self.urls[0]
        r = self._http.get(f"{url}/v1/invocations/{call.id}/response")
        if r.status_code != 200 or r.content != call.body:
            report.lost += 1
            self._count(report.ended_otherwise, f"wrong response {r.status_code}")
            return
        report.succeeded += 1

    def _view(self, call_id: str) -> dict[str, Any] | None:
        for url in self.urls:  # any gateway that answers
            try:
                r = self._http.get(f"{url}/v1/invocations/{call_id}")
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                view: dict[str, Any] = r.json()
                return view
        return None

    @staticmethod
    def _count(into: dict[str, int], key: str) -> None:
        into[key] = into.get(key, 0) + 1


def async_campaign(
    urls: list[str],
    token: str,
    fault: Callable[[], str],
    *,
    calls: int = 200,
    timeout_s: float = 180.0,
    progress: Callable[[str], None] = print,
) -> AsyncReport:
    """Submit the calls one after another; once half are in, the fault (it says what it did)
    comes while the rest keep coming; then follow every call to its end."""
    load = AsyncLoad(urls, token)
    half = threading.Event()

    def submit() -> None:
        load.submit(calls // 2)
        half.set()
        load.submit(calls - calls // 2)

    submitter = threading.Thread(target=submit, name="async-submit", daemon=True)
    try:
        submitter.start()
        half.wait()
        fault_at = time.monotonic()
        load.report.faults.append(fault())
        progress(load.report.faults[-1])
        submitter.join()
        return load.follow(timeout_s, fault_at)
    finally:
        submitter.join()
        load.close()


def running_calls_of(redis_url: str, consumer: str) -> int:
    """How many of the async calls ``consumer`` holds (read, not acknowledged) are running:
    the ones that must run again elsewhere should that node die now."""
    client = redis.Redis.from_url(redis_url)
    try:
        pending: Any = client.xpending_range(
            async_queue_key(), ASYNC_GROUP, min="-", max="+", count=10_000, consumername=consumer
        )
        running = 0
        for entry in pending:
            fields: Any = client.xrange(async_queue_key(), entry["message_id"], entry["message_id"])
            for _, values in fields:
                status = client.hget(async_call_key(values[b"id"].decode()), "status")
                running += status == b"running"
        return running
    finally:
        client.close()


def busiest_consumer(redis_url: str, at_least: int = 2, timeout_s: float = 15.0) -> str:
    """The node holding the most async calls right now (the queue's pending entries by
    consumer), once one holds ``at_least``: a node to kill with calls in its hands."""
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            pending: Any = client.xpending(async_queue_key(), ASYNC_GROUP)
            held: dict[str, int] = {
                c["name"].decode(): int(c["pending"]) for c in pending["consumers"]
            }
            if held and max(held.values()) >= at_least:
                return max(held, key=lambda name: held[name])
            if time.monotonic() > deadline:
                raise BenchError(f"no node held {at_least} async calls in {timeout_s:g} s")
            time.sleep(0.01)
    finally:
        client.close()
