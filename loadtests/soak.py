"""A soak: a steady mixed load against a platform of its own for a long while, with the
changes and faults of everyday life on a schedule, reported per window with the slope of
every resource, so that anything growing without bound shows.

The load: sync calls of an echo (unique bodies, checked), hostcalls (the counter's
key-value increments, checked to count up), and async calls followed to their end
(checked against their own body). The schedule: a deploy of a new version of the echo
and, half a period later, a rollback to the one before; a ``kill -9`` of a serving QEMU.
Sampled every few seconds: the node processes' RSS and open descriptors, their QEMUs,
and Redis's used memory.

``unifaas bench soak`` runs it against ``unifaas up`` or the local cluster; the tests
run a two-minute form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from functions import c_example, wat_module
from loadtests.bench.stats import open_fds, percentile, rss_kib, start_ticks
from loadtests.chaos import answer_kind, children, qemu_children
from loadtests.cluster import local_cluster
from loadtests.errors import BenchError
from loadtests.launch import platform_process
from unikernel.children import pid_alive

Progress = Callable[[str], None]
ECHO, COUNTER = "soak-echo", "soak-counter"
ECHO_CONFIG = '{"min_warm": 1, "max_vms": 3, "concurrency": 2, "timeout_s": 10}'
SAMPLE_S = 5.0
ASYNC_WAIT_S = 120.0  # an async call not ended by then is lost
# What a report's slopes are of: every resource, and the latencies.
TRACKED = ("p50_ms", "p99_ms", "rss_mib", "fds", "qemus", "redis_mib")


@dataclasses.dataclass(frozen=True)
class Schedule:
    duration_s: float = 3600.0
    window_s: float = 300.0
    churn_every_s: float = 60.0  # a deploy, and a rollback half a period later
    kill_every_s: float = 120.0
    sync_clients: int = 2
    hostcall_clients: int = 1
    async_clients: int = 1


@dataclasses.dataclass
class Window:
    start_s: float
    calls: int = 0
    lost: int = 0
    async_calls: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_mib: float = 0.0  # at the window's end: the node processes together
    fds: int = 0
    qemus: int = 0
    redis_mib: float = 0.0


@dataclasses.dataclass
class SoakReport:
    target: str
    schedule: Schedule
    windows: list[Window] = dataclasses.field(default_factory=list)
    calls: int = 0
    lost: int = 0
    failed: dict[str, int] = dataclasses.field(default_factory=dict)  # by kind
    after_effect: int = 0  # answered 503: VM lost after a key-value write (see AFTER_EFFECT)
    events: list[str] = dataclasses.field(default_factory=list)
    deploys: int = 0
    rollbacks: int = 0
    kills: int = 0
    slopes_per_hour: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The platform's documented answer to a call whose VM died after the call had changed
# something outside it (here: a key-value increment): not run again, 503 sandbox_lost
# saying so. Counted apart: it is an answer, and the effect rule asks for it.
AFTER_EFFECT = "had made a change outside its VM"


@dataclasses.dataclass(frozen=True)
class Call:
    at: float  # seconds since the soak began
    ms: float
    kind: str  # "" when answered correctly
    is_async: bool = False

    @property
    def lost(self) -> bool:
        return bool(self.kind) and self.kind != AFTER_EFFECT


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float
    rss_kib: int
    fds: int
    qemus: int
    redis_bytes: int


@dataclasses.dataclass
class Target:
    """What the soak drives and watches: gateway URLs, node pids, a Redis client."""

    name: str
    urls: list[str]
    token: str
    node_pids: Callable[[], list[int]]
    redis: redis.Redis


class Soak:
    def __init__(self, target: Target, schedule: Schedule, progress: Progress) -> None:
        self.target, self.schedule, self.progress = target, schedule, progress
        self.report = SoakReport(target.name, schedule)
        self.calls: list[Call] = []
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self._next_window = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def http(self, n: int = 0, timeout: float = 60) -> httpx.Client:
        t = self.target
        headers = {"Authorization": f"Bearer {t.token}"}
        return httpx.Client(base_url=t.urls[n % len(t.urls)], headers=headers, timeout=timeout)

    def record(self, started: float, kind: str, *, is_async: bool = False) -> None:
        call = Call(started, (self.now() - started) * 1000, kind, is_async)
        with self.lock:
            self.calls.append(call)

    # -- the load --------------------------------------------------------------
    def sync_client(self, n: int) -> None:
        with self.http(n) as http:
            i = 0
            while not self.stop.is_set():
                body = f"soak sync {n} {i} ".encode() + os.urandom(64)
                i += 1
                started = self.now()
                try:
                    r = http.post(f"/fn/{ECHO}", content=body)
                    kind = "" if r.status_code == 200 and r.content == body else answer_kind(r)
                except httpx.HTTPError as err:
                    kind = f"transport: {type(err).__name__}"
                self.record(started, kind)

    def hostcall_client(self, n: int) -> None:
        with self.http(n) as http:
            path, expect = f"/soak-{n}-{os.getpid()}", 1
            while not self.stop.is_set():
                started = self.now()
                try:
                    r = http.get(f"/fn/{COUNTER}{path}")
                    ok = r.status_code == 200 and r.text.strip() == str(expect)
                    kind = "" if ok else f"counter {r.status_code}: {r.text[:40]!r}"
                    if r.status_code == 503 and AFTER_EFFECT in r.text:
                        kind = AFTER_EFFECT
                except httpx.HTTPError as err:
                    kind = f"transport: {type(err).__name__}"
                self.record(started, kind)
                if not kind:
                    expect += 1
                else:  # count from wherever the store is now (an unanswered call may have run)
                    path, expect = f"{path}x", 1

    def async_client(self, n: int) -> None:
        with self.http(n) as http:
            i = 0
            while not self.stop.is_set():
                body = f"soak async {n} {i}".encode()
                i += 1
                started = self.now()
                self.record(started, _follow_async(http, body), is_async=True)

    # -- the schedule ----------------------------------------------------------
    def churn(self) -> None:
        """A deploy of a new version of the echo, then a rollback half a period later."""
        half, module = self.schedule.churn_every_s / 2, wat_module("echo")
        with self.http(timeout=120) as http:
            while not self.stop.wait(half):
                files, data = {"module": ("e.wasm", module)}, {"config": ECHO_CONFIG}
                r = http.post(f"/v1/functions/{ECHO}", files=files, data=data)
                self.event(f"deploy {r.status_code} v{r.json().get('version', '?')}")
                self.report.deploys += r.status_code == 201
                if self.stop.wait(half):
                    return
                r = http.post(f"/v1/functions/{ECHO}/rollback")
                self.event(f"rollback {r.status_code} to v{r.json().get('version', '?')}")
                self.report.rollbacks += r.status_code == 200

    def killer(self) -> None:
        while not self.stop.wait(self.schedule.kill_every_s):
            qemus = [pid for node in self.target.node_pids() for pid in qemu_children(node)]
            if not qemus:
                self.event("kill: no QEMU")
                continue
            victim = min(qemus, key=start_ticks)  # the longest-serving one
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
                self.report.kills += 1
            self.event(f"kill -9 QEMU {victim}")

    def sampler(self) -> None:
        while True:
            pids = self.target.node_pids()
            qemus = sum(len(qemu_children(pid)) for pid in pids)
            try:
                used = int(self.target.redis.info("memory")["used_memory"])
            except redis.RedisError:
                used = self.samples[-1].redis_bytes if self.samples else 0
            rss, fds = sum(map(rss_kib, pids)), sum(map(open_fds, pids))
            self.samples.append(Sample(self.now(), rss, fds, qemus, used))
            self._close_windows()
            if self.stop.wait(SAMPLE_S):
                return

    def event(self, what: str) -> None:
        self.report.events.append(f"{self.now():7.1f}s {what}")

    # -- the report ------------------------------------------------------------
    def _close_windows(self) -> None:
        """Report each window as soon as it is over (a long soak shows its progress)."""
        size = self.schedule.window_s
        while (self._next_window + 1) * size <= self.now():
            window = self._window(self._next_window)
            self.report.windows.append(window)
            self._next_window += 1
            self.progress(_row(window))

    def _window(self, k: int) -> Window:
        size = self.schedule.window_s
        start, end = k * size, (k + 1) * size
        with self.lock:
            calls = [c for c in self.calls if start <= c.at < end]
        w = Window(start_s=start, calls=len(calls), lost=sum(1 for c in calls if c.lost))
        w.async_calls = sum(1 for c in calls if c.is_async)
        sync = [c.ms for c in calls if not c.is_async]
        if sync:
            w.p50_ms, w.p99_ms = round(percentile(sync, 50), 2), round(percentile(sync, 99), 2)
        last = max((s for s in self.samples if s.at < end), key=lambda s: s.at, default=None)
        if last is not None:
            w.rss_mib, w.fds, w.qemus = round(last.rss_kib / 1024, 1), last.fds, last.qemus
            w.redis_mib = round(last.redis_bytes / 2**20, 2)
        return w

    def finish(self) -> SoakReport:
        report = self.report
        report.calls = len(self.calls)
        report.lost = sum(1 for c in self.calls if c.lost)
        report.after_effect = sum(1 for c in self.calls if c.kind == AFTER_EFFECT)
        for call in self.calls:
            if call.lost:
                report.failed[call.kind] = report.failed.get(call.kind, 0) + 1
        hours = [w.start_s / 3600 for w in report.windows]
        for field in TRACKED:
            values = [float(getattr(w, field)) for w in report.windows]
            report.slopes_per_hour[field] = round(slope(hours, values), 3)
        return report


def slope(xs: list[float], ys: list[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs`` (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


HEADER = (
    f"{'window':>8} {'calls':>7} {'lost':>5} {'async':>6} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'RSS MiB':>8} {'fds':>5} {'QEMUs':>5} {'Redis MiB':>9}"
)


def _row(w: Window) -> str:
    minutes, seconds = divmod(int(w.start_s), 60)
    return (
        f"{minutes:>5}:{seconds:02} {w.calls:>7} {w.lost:>5} {w.async_calls:>6} {w.p50_ms:>8} "
        f"{w.p99_ms:>8} {w.rss_mib:>8} {w.fds:>5} {w.qemus:>5} {w.redis_mib:>9}"
    )


def table(report: SoakReport) -> str:
    """The windows, the totals and the slopes, as the soak printed them."""
    lines = [HEADER, *map(_row, report.windows)]
    lines.append(
        f"calls {report.calls}, lost {report.lost}{f' {report.failed}' if report.failed else ''}"
        f", not run again after an effect (503) {report.after_effect}; deploys "
        f"{report.deploys}, rollbacks {report.rollbacks}, QEMUs killed {report.kills}"
    )
    lines.append(
        "slopes per hour: " + ", ".join(f"{k} {v:+g}" for k, v in report.slopes_per_hour.items())
    )
    return "\n".join(lines)


def run_soak(target: Target, schedule: Schedule, progress: Progress = print) -> SoakReport:
    soak = Soak(target, schedule, progress)
    progress(HEADER)
    workers = [
        *(
            threading.Thread(target=soak.sync_client, args=(n,))
            for n in range(schedule.sync_clients)
        ),
        *(
            threading.Thread(target=soak.hostcall_client, args=(n,))
            for n in range(schedule.hostcall_clients)
        ),
        *(
            threading.Thread(target=soak.async_client, args=(n,))
            for n in range(schedule.async_clients)
        ),
        threading.Thread(target=soak.churn),
        threading.Thread(target=soak.killer),
        threading.Thread(target=soak.sampler),
    ]
    for t in workers:
        t.daemon = True
        t.start()
    try:
        soak.stop.wait(schedule.duration_s)
    finally:
        soak.stop.set()
        for t in workers:
            t.join(ASYNC_WAIT_S + 30)
    soak._close_windows()
    return soak.finish()


# -- the platform it runs against ---------------------------------------------------
def _deploy(http: httpx.Client) -> None:
    deploys = {
        ECHO: (wat_module("echo"), ECHO_CONFIG),
        COUNTER: (c_example("counter"), '{"abi": "wagi"}'),
    }
    for name, (module, cfg) in deploys.items():
        r = http.post(
            f"/v1/functions/{name}",
            files={"module": (f"{name}.wasm", module)},
            data={"config": cfg},
        )
        if r.status_code != 201:
            raise BenchError(f"deploy of {name} failed: {r.status_code} {r.text[:200]}")
        if http.post(f"/fn/{name}", content=b"first").status_code != 200:
            raise BenchError(f"{name} does not answer")


@contextlib.contextmanager
def platform_target(kind: str, base: Path) -> Iterator[Target]:
    """``up`` (one process, its own Redis) or ``cluster`` (Redis, three nodes, two
    gateways), deployed and answering, stopped by pid on the way out."""
    extra = {"UNIFAAS_IDLE_TARGET": "1"}
    with contextlib.ExitStack() as stack:
        if kind == "up":
            state = base / "state"
            served = stack.enter_context(platform_process(state, max_vms=6, extra_env=extra))
            client = redis.Redis(unix_socket_path=_redis_socket(served.proc.pid))
            token = (state / "token").read_text().strip()
            target = Target("up", [served.url], token, lambda: [served.proc.pid], client)
        else:
            cluster = stack.enter_context(
                local_cluster(base, nodes=3, gateways=2, max_vms=4, extra_env=extra)
            )
            client = redis.Redis.from_url(cluster.redis_url)
            pids = [n.proc.pid for n in cluster.nodes]
            urls = [g.url for g in cluster.gateways]
            target = Target(
                "cluster", urls, cluster.token, lambda: [p for p in pids if pid_alive(p)], client
            )
        stack.enter_context(contextlib.closing(client))
        with _client(target) as http:
            _deploy(http)
        yield target


def soak(kind: str, schedule: Schedule, progress: Progress = print) -> SoakReport:
    with tempfile.TemporaryDirectory(prefix="unifaas-soak-") as tmp:
        progress(f"{kind}: starting")
        with platform_target(kind, Path(tmp)) as target:
            return run_soak(target, schedule, progress)


# -- helpers ----------------------------------------------------------------------
def _client(target: Target) -> httpx.Client:
    return httpx.Client(
        base_url=target.urls[0], headers={"Authorization": f"Bearer {target.token}"}, timeout=120
    )


def _follow_async(http: httpx.Client, body: bytes) -> str:
    """Submit one async call and follow it to its end: "" when it ended with its own body."""
    try:
        r = http.post(f"/fn/{ECHO}", content=body, headers={"Prefer": "respond-async"})
        if r.status_code != 202:
            return f"async submit {r.status_code}"
        call_id = r.json()["id"]
        deadline = time.monotonic() + ASYNC_WAIT_S
        while time.monotonic() < deadline:
            view = http.get(f"/v1/invocations/{call_id}")
            status = view.json().get("status") if view.status_code == 200 else None
            if status == "succeeded":
                got = http.get(f"/v1/invocations/{call_id}/response")
                return "" if got.status_code == 200 and got.content == body else "async wrong"
            if status in ("failed", "dead"):
                return f"async {status}"
            time.sleep(0.1)
        return "async not ended"
    except httpx.HTTPError as err:
        return f"async transport: {type(err).__name__}"


def _redis_socket(up_pid: int) -> str:
    """The embedded redis-server's socket, from the title it gives itself
    (``redis-server unixsocket:PATH``)."""
    for pid in children(up_pid, b"redis-server"):
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for word in title.split():
            if word.startswith("unixsocket:"):
                return word.removeprefix("unixsocket:")
    raise BenchError("no embedded redis-server found")
