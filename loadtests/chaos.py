"""Fault campaign: clients call a well-behaved function while faults are injected on a
schedule; one report counts what was sent, answered correctly, retried, failed and lost.

Faults: ``kill -9`` of serving QEMUs (each a child of the ``up`` process),
``SIGSTOP`` of a serving QEMU for longer than the function's timeout (the shim
gives up on its calls after timeout + ``UNIFAAS_VM_CALL_GRACE_S`` and kills it),
``kill -9`` of the embedded redis-server, deletion of the snapshot template's
RAM file (new VMs are booted while the template is rebuilt), and faults that
overlap in one call's life: two QEMUs killed a moment apart (the second where the
first one's calls run again), a kill while another QEMU is frozen, and the
redis-server killed with a QEMU.
Every client posts a unique body to echo and checks it comes back: anything but
that body with status 200 is *lost*. ``unifaas bench chaos`` runs a campaign
against a platform of its own; the tests run short ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from functions import wat_module
from loadtests.bench.stats import percentile, start_ticks, stat_fields
from loadtests.errors import BenchError
from loadtests.launch import platform_process

Progress = Callable[[str], None]
FUNCTION = "chaos-echo"
SNAPSHOT_DIR = "/dev/shm"  # where the platform keeps template RAM (UNIFAAS_VM_SNAPSHOT_DIR unset)
BODY_BYTES = 32 * 1024  # big enough that a call is in flight most of the time under TCG
FAULT_WINDOW_S = 3.0  # how long after a fault a call counts as "during" it


@dataclasses.dataclass
class Report:
    clients: int
    duration_s: float
    faults: list[str] = dataclasses.field(default_factory=list)
    sent: int = 0
    answered: int = 0  # status 200 and the body echoed
    retried: int = 0  # answered calls that ran again on another VM (X-Retries > 0)
    retried_twice: int = 0  # of which ran on three VMs or more: faults overlapped in their life
    failed: dict[str, int] = dataclasses.field(default_factory=dict)  # by error kind
    lost: int = 0  # anything but a correct answer
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    # Calls that started within FAULT_WINDOW_S after a fault (or during a freeze), and the rest.
    during_faults_p50_ms: float = 0.0
    during_faults_p99_ms: float = 0.0
    outside_faults_p50_ms: float = 0.0
    outside_faults_p99_ms: float = 0.0
    # After the campaign, a new function was deployed and answered (bench chaos only).
    deployed_after: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def qemu_children(parent: int) -> list[int]:
    """Pids of the QEMU processes ``parent`` started."""
    return children(parent, b"qemu-system")


def children(parent: int, program: bytes) -> list[int]:
    """Pids of the live processes ``parent`` started whose command line holds ``program``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is None or int(fields[1]) != parent or fields[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if program in cmdline:
            found.append(int(entry.name))
    return sorted(found)


class Tally:
    """What the clients of a campaign saw, and when its faults were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = self.answered = self.retried = self.retried_twice = 0
        self.failovers = 0  # calls refused a connection and sent to the next URL (failover)
        self.failed: Counter[str] = Counter()
        self.latencies: list[tuple[float, float]] = []  # (start, ms)
        self.fault_windows: list[tuple[float, float]] = []

    def fault(self, window_s: float = FAULT_WINDOW_S) -> None:
        """A fault is injected now: calls started in the next ``window_s`` are during it."""
        now = time.perf_counter()
        self.fault_windows.append((now, now + window_s))

    def fill(self, report: Report) -> None:
        report.sent, report.answered, report.retried = self.sent, self.answered, self.retried
        report.retried_twice = self.retried_twice
        report.failed = dict(self.failed)
        report.lost = self.sent - self.answered

        def during(start: float) -> bool:
            return any(a <= start <= b for a, b in self.fault_windows)

        groups = {
            "": [ms for _, ms in self.latencies],
            "during_faults_": [ms for t, ms in self.latencies if during(t)],
            "outside_faults_": [ms for t, ms in self.latencies if not during(t)],
        }
        for prefix, samples in groups.items():
            if samples:
                setattr(report, f"{prefix}p50_ms", round(percentile(samples, 50), 2))
                setattr(report, f"{prefix}p99_ms", round(percentile(samples, 99), 2))


@contextlib.contextmanager
def load(urls: list[str], token: str, clients: int, *, failover: bool = False) -> Iterator[Tally]:
    """``clients`` threads calling the campaign's echo, client n through ``urls[n % len]``,
    until the block ends (each finishes its call in flight). With ``failover``, a call whose
    connection is refused goes to the next URL, as a load balancer in front of several
    gateways does: refused, the call never reached a server."""
    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(
            target=_client,
            args=([*urls[n % len(urls) :], *urls[: n % len(urls)]], token, stop, tally, n),
            kwargs={"failover": failover},
            daemon=True,
        )
        for n in range(clients)
    ]
    for t in threads:
        t.start()
    try:
        yield tally
    finally:
        stop.set()
        for t in threads:
            t.join(150)


def _client(
    urls: list[str], token: str, stop: threading.Event, tally: Tally, n: int, *, failover: bool
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=120) as http:
        i = 0
        while not stop.is_set():
            body = f"client {n} call {i} ".encode() + os.urandom(BODY_BYTES)
            i += 1
            started = time.perf_counter()
            for url in urls if failover else urls[:1]:
                try:
                    r = http.post(f"{url}/fn/{FUNCTION}", content=body)
                    kind = "" if r.status_code == 200 and r.content == body else answer_kind(r)
                    retries = int(r.headers.get("x-retries", "0"))
                    break
                except httpx.ConnectError:
                    kind, retries = "transport: ConnectError", 0
                    with tally.lock:
                        tally.failovers += 1
                except httpx.HTTPError as err:
                    kind, retries = f"transport: {type(err).__name__}", 0
                    break
            with tally.lock:
                tally.sent += 1
                tally.latencies.append((started, (time.perf_counter() - started) * 1000))
                if kind:
                    tally.failed[kind] += 1
                else:
                    tally.answered += 1
                    tally.retried += retries > 0
                    tally.retried_twice += retries > 1


def answer_kind(r: httpx.Response) -> str:
    """What went wrong with an answer that is not the one expected: its error kind."""
    try:
        return str(r.json()["error"]["kind"])
    except (ValueError, KeyError, TypeError):
        return f"http {r.status_code}" if r.status_code != 200 else "wrong body"


@dataclasses.dataclass(frozen=True)
class Faults:
    """What a campaign injects, in this order: kills of serving QEMUs, freezes of one for
    ``freeze_s``, kills of the embedded redis-server, deletions of the template's RAM; then
    the faults that overlap in one call's life: two QEMUs killed ``overlap_s`` apart (the
    second is the newest, where the calls of the first run again, booting or serving), a
    QEMU killed while another is frozen, and the redis-server killed with a QEMU."""

    kills: int = 3
    freezes: int = 1
    freeze_s: float = 0.0
    redis_kills: int = 1
    template_deletions: int = 1
    double_kills: int = 0
    kills_in_freeze: int = 0
    redis_with_kills: int = 0
    overlap_s: float = 0.3

    def schedule(self) -> list[str]:
        return (
            ["kill"] * self.kills
            + ["freeze"] * self.freezes
            + ["redis"] * self.redis_kills
            + ["template"] * self.template_deletions
            + ["kill+kill"] * self.double_kills
            + ["freeze+kill"] * self.kills_in_freeze
            + ["redis+kill"] * self.redis_with_kills
        )


def run_campaign(
    url: str,
    token: str,
    up_pid: int,
    faults: Faults,
    *,
    clients: int = 4,
    duration_s: float = 45.0,
    progress: Progress = print,
) -> Report:
    """Drive ``clients`` against the deployed echo for ``duration_s`` while injecting
    ``faults``, evenly spaced in their order; the report counts every call."""
    report = Report(clients, duration_s)
    with load([url], token, clients) as tally:
        schedule = faults.schedule()
        gap = duration_s / (len(schedule) + 1)
        for k, fault in enumerate(schedule):
            time.sleep(gap)
            frozen = "freeze" in fault
            tally.fault(FAULT_WINDOW_S + (faults.freeze_s if frozen else 0.0))
            done = _inject(fault, up_pid, faults)
            report.faults.append(f"{'; '.join(done)} at {gap * (k + 1):.1f}s")
            progress(report.faults[-1])
        time.sleep(max(gap, faults.freeze_s))
    tally.fill(report)
    return report


def _inject(fault: str, up_pid: int, faults: Faults) -> list[str]:
    """Inject one scheduled fault (``a+b``: ``a``, then ``b`` ``overlap_s`` later); what was
    done, one line per part."""
    if fault == "template":
        rams = sorted(Path(SNAPSHOT_DIR).glob(f"unifaas-tpl-{up_pid}-*/ram"))
        for ram in rams:
            ram.unlink(missing_ok=True)
        return [f"deleted the template RAM file ({len(rams)})"]
    first, _, then = fault.partition("+")
    done = [_hit(first, up_pid, faults.freeze_s, newest=False)]
    if then:
        time.sleep(faults.overlap_s)
        # The newest QEMU: where the calls of the first fault are running again (a VM
        # booting for them, or one that took them); never the frozen one.
        done.append(_hit(then, up_pid, faults.freeze_s, newest=True))
    return done


def _hit(fault: str, up_pid: int, freeze_s: float, *, newest: bool) -> str:
    pids = children(up_pid, b"redis-server" if fault == "redis" else b"qemu-system")
    if not pids:
        return f"{fault}: no process"
    # The longest-running QEMU by default: a VM started since a previous fault may be
    # booting, and killing a boot is what the overlapping faults do on purpose.
    victim = (max if newest else min)(pids, key=start_ticks)
    if fault == "freeze":
        threading.Thread(target=_freeze, args=(victim, freeze_s), daemon=True).start()
        return f"SIGSTOP QEMU {victim} for {freeze_s:g}s"
    os.kill(victim, signal.SIGKILL)
    return f"kill -9 {'redis-server' if fault == 'redis' else 'QEMU'} {victim}"


def _freeze(pid: int, seconds: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)


def deploy_echo(
    http: httpx.Client, *, vms: int = 2, concurrency: int = 2, timeout_s: float = 2.0
) -> None:
    """Deploy the campaign's echo with ``vms`` warm VMs and wait until they are loaded and the
    template of its version is made (its maker is a QEMU the faults must not count)."""
    config = json.dumps(
        {"min_warm": vms, "max_vms": vms + 2, "concurrency": concurrency, "timeout_s": timeout_s}
    )
    r = http.post(
        f"/v1/functions/{FUNCTION}",
        files={"module": ("echo.wasm", wat_module("echo"))},
        data={"config": config},
    )
    if r.status_code != 201:
        raise BenchError(f"deploy failed: {r.status_code} {r.text[:200]}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pool = http.get("/v1/status").json()["pool"]
        # No other VM on the node, and no template maker running either.
        if pool["bound"] >= vms and pool["vms"] == pool["bound"] and not pool["templates_making"]:
            return
        time.sleep(0.2)
    raise BenchError(f"{FUNCTION} did not get {vms} warm VMs")


# The function's timeout and the host's grace on top of it (UNIFAAS_VM_CALL_GRACE_S):
# a VM frozen for longer than both is given up on and its calls run elsewhere.
TIMEOUT_S = 2.0
GRACE_S = 5.0


def chaos(
    faults: Faults, clients: int = 4, duration_s: float = 45.0, progress: Progress = print
) -> Report:
    """A campaign against a platform of its own (``unifaas up`` as a child process)."""
    with tempfile.TemporaryDirectory(prefix="unifaas-chaos-") as tmp:
        state = Path(tmp) / "state"
        extra = {
            "UNIFAAS_IDLE_TARGET": "0",
            "UNIFAAS_QUEUE_TIMEOUT_S": "60",
            "UNIFAAS_VM_CALL_GRACE_S": str(GRACE_S),
        }
        progress("platform: starting")
        with platform_process(state, max_vms=6, extra_env=extra) as served:
            token = (state / "token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=served.url, headers=headers, timeout=120) as http:
                deploy_echo(http, timeout_s=TIMEOUT_S)
            # A VM frozen past the function's timeout and the grace is given up on.
            faults = dataclasses.replace(faults, freeze_s=TIMEOUT_S + GRACE_S + 2)
            progress(
                f"{clients} clients for {duration_s:g}s, faults: {', '.join(faults.schedule())}"
            )
            report = run_campaign(
                served.url,
                token,
                served.proc.pid,
                faults,
                clients=clients,
                duration_s=duration_s,
                progress=progress,
            )
            with httpx.Client(base_url=served.url, headers=headers, timeout=120) as http:
                report.deployed_after = _deploys_and_serves(http)
            return report


def _deploys_and_serves(http: httpx.Client) -> bool:
    module = {"module": ("echo.wasm", wat_module("echo"))}
    if http.post("/v1/functions/chaos-after", files=module).status_code != 201:
        return False
    r = http.post("/fn/chaos-after", content=b"after the faults")
    return r.status_code == 200 and r.content == b"after the faults"
