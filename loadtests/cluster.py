"""A cluster on one machine, as real processes: one redis-server on a loopback port, N
``unifaas node`` and M ``unifaas gateway`` processes sharing a token; and the campaigns run
against it (kill -9 of a node under load). Every process is stopped by its pid (its process
group: a node's QEMUs go with it) on every way out.

The end-to-end tests and ``unifaas bench cluster`` use it; the README's three-node recipe
does by hand what :func:`local_cluster` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from functions import wat_module
from loadtests.chaos import FUNCTION, Report, load
from loadtests.errors import BenchError, LaunchError
from loadtests.launch import CLI, STOP_WAIT_S, Served, free_port, running, wait_healthy

Progress = Callable[[str], None]
REDIS_START_S = 10.0


class ClusterView:
    """A cluster as campaigns see it: its gateways, its nodes through them, and a way to
    kill a node (a process group here, a container in loadtests.containers)."""

    token: str

    def gateway_urls(self) -> list[str]:
        raise NotImplementedError

    def kill_node(self, node_id: str) -> None:
        raise NotImplementedError

    def http(self, gateway: int = 0) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway_urls()[gateway],
            timeout=120,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def live_nodes(self, gateway: int = 0) -> list[dict[str, Any]]:
        with self.http(gateway) as http:
            nodes: list[dict[str, Any]] = http.get("/v1/nodes").json()
        return [n for n in nodes if n["alive"]]

    def wait_nodes(self, count: int, timeout_s: float = 120.0, gateway: int = 0) -> float:
        """Until ``gateway`` lists exactly ``count`` live nodes; returns the seconds it took."""
        started = time.monotonic()
        while len(self.live_nodes(gateway)) != count:
            if time.monotonic() - started > timeout_s:
                raise BenchError(f"the gateway did not see {count} live nodes in {timeout_s:g} s")
            time.sleep(0.1)
        return time.monotonic() - started


@dataclasses.dataclass
class LocalCluster(ClusterView):
    redis_url: str
    redis_proc: subprocess.Popen[bytes] | None  # None: a Redis it did not start
    token: str
    nodes: list[Served]
    gateways: list[Served]
    # Where restarted processes are registered, to be stopped with the rest.
    stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)
    restarts: int = 0

    def gateway_urls(self) -> list[str]:
        return [g.url for g in self.gateways]

    def node_pid(self, node_id: str) -> int:
        """The pid of the node process whose record has ``node_id``."""
        gateway = next(i for i, g in enumerate(self.gateways) if g.proc.poll() is None)
        for node in self.live_nodes(gateway):
            if node["id"] == node_id:
                return int(node["pid"])
        raise BenchError(f"no live node {node_id}")

    def kill_node(self, node_id: str, *, while_frozen: Callable[[], object] | None = None) -> None:
        """kill -9 of a node's whole process group: the node and its QEMUs. ``while_frozen``
        runs between a SIGSTOP of the group and the kill, so what it reads of the node's
        state is what the node dies with."""
        pid = self.node_pid(node_id)
        if while_frozen is not None:
            os.killpg(pid, signal.SIGSTOP)
            while_frozen()
        os.killpg(pid, signal.SIGKILL)
        for served in self.nodes:
            if served.proc.pid == pid:
                served.proc.wait()

    def restart(self, served: Served) -> Served:
        """Stop a node or gateway as an operator would (SIGTERM: it drains, then exits), start
        it again with the same command line, state and port, and wait until it is healthy."""
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(STOP_WAIT_S)
        self.restarts += 1
        log = served.log.with_suffix(f".{self.restarts}.log")
        argv = [str(a) for a in served.proc.args] if isinstance(served.proc.args, list) else []
        proc = self.stack.enter_context(running(argv, served.env, log))
        wait_healthy(proc, served.url, log)
        again = Served(served.url, proc, served.env, log)
        for group in (self.nodes, self.gateways):
            if served in group:
                group[group.index(served)] = again
        return again


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise LaunchError("redis-server is not installed (scripts/bootstrap.sh installs it)")
    return binary


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    return [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip


@contextlib.contextmanager
def redis_process(base: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server on a free loopback port (the cluster's shared Redis)."""
    binary = _redis_binary()
    data = base / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with running(redis_argv(binary, port, data), dict(os.environ), base / "redis.out") as proc:
        _wait_ping(port, proc, data)
        yield url, proc


SENTINEL_SERVICE = "unifaas"


@dataclasses.dataclass
class SentinelGroup:
    """A primary, its replica and three sentinels watching them, all on loopback."""

    url: str  # redis+sentinel://... for the servers
    primary: subprocess.Popen[bytes]
    replica: subprocess.Popen[bytes]
    sentinel_ports: list[int]

    def primary_port(self) -> int:
        """The port of the primary the sentinels name now."""
        client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        try:
            host_port = client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE
            )
        finally:
            client.close()
        return int(host_port[1])


@contextlib.contextmanager
def sentinel_group(base: Path) -> Iterator[SentinelGroup]:
    """Start the group and wait until every sentinel sees the primary and its replica.
    Sentinels here decide fast (the primary is down after 1 s without an answer)."""
    binary = _redis_binary()
    with contextlib.ExitStack() as stack:
        primary_port, replica_port = free_port(), free_port()
        procs = []
        for name, port, extra in (
            ("primary", primary_port, []),
            ("replica", replica_port, ["--replicaof", "127.0.0.1", str(primary_port)]),
        ):
            data = base / name
            data.mkdir(parents=True, exist_ok=True)
            argv = [*redis_argv(binary, port, data), *extra]
            procs.append(stack.enter_context(running(argv, dict(os.environ), base / f"{name}.out")))
            _wait_ping(port, procs[-1], data)
        sentinel_ports = [free_port() for _ in range(3)]
        for i, port in enumerate(sentinel_ports):
            data = base / f"sentinel{i}"
            data.mkdir(parents=True, exist_ok=True)
            conf = data / "sentinel.conf"  # sentinels rewrite their own config
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {data}\n"
                f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n"
                f"sentinel failover-timeout {SENTINEL_SERVICE} 5000\n"
                f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
            )
            argv = [binary, str(conf), "--sentinel", "--logfile", str(data / "sentinel.log")]
            proc = stack.enter_context(running(argv, dict(os.environ), base / f"sentinel{i}.out"))
            _wait_ping(port, proc, data)
        hosts = ",".join(f"127.0.0.1:{p}" for p in sentinel_ports)
        group = SentinelGroup(
            f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0", procs[0], procs[1], sentinel_ports
        )
        _wait_sentinels(sentinel_ports)
        yield group


def _wait_ping(port: int, proc: subprocess.Popen[bytes], data: Path) -> None:
    deadline = time.monotonic() + REDIS_START_S
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    try:
        while True:
            if proc.poll() is not None:
                raise LaunchError(f"redis-server on port {port} exited at start; see {data}")
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise LaunchError(f"redis-server on port {port} did not answer PING")
            time.sleep(0.05)
    finally:
        client.close()


def _wait_sentinels(ports: list[int]) -> None:
    """Until each sentinel knows the replica and the other two sentinels."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = 0
        for port in ports:
            client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            try:
                fields = client.sentinel_master(SENTINEL_SERVICE)
                assert isinstance(fields, dict)
                if int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2:
                    ready += 1
            except redis.RedisError:
                pass
            finally:
                client.close()
        if ready == len(ports):
            return
        time.sleep(0.2)
    raise LaunchError("the sentinels did not find each other and the replica in 30 s")


@contextlib.contextmanager
def local_cluster(
    base: Path,
    *,
    nodes: int = 3,
    gateways: int = 2,
    max_vms: int = 3,
    extra_env: dict[str, str] | None = None,
    redis_url: str | None = None,
) -> Iterator[LocalCluster]:
    """Start Redis (unless ``redis_url`` names one), then every node and gateway at once,
    and wait until all are healthy."""
    token = secrets.token_urlsafe(24)
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis_proc: subprocess.Popen[bytes] | None = None
        if redis_url is None:
            redis_url, redis_proc = stack.enter_context(redis_process(base))
        env = {
            **os.environ,
            "UNIFAAS_TOKEN": token,
            "UNIFAAS_REDIS_URL": redis_url,
            **(extra_env or {}),
        }
        started: list[tuple[subprocess.Popen[bytes], str, dict[str, str], Path]] = []
        for role, count in (("node", nodes), ("gateway", gateways)):
            for i in range(count):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                state = base / f"{role}{i}"
                own_env = {**env, "UNIFAAS_URL": url, "UNIFAAS_STATE_DIR": str(state)}
                argv = [*CLI, role, "--port", str(port), "--state-dir", str(state)]
                if role == "node":
                    argv += ["--max-vms", str(max_vms)]
                log = base / f"{role}{i}.log"
                proc = stack.enter_context(running(argv, own_env, log))
                started.append((proc, url, own_env, log))
        served = []
        for proc, url, own_env, log in started:
            wait_healthy(proc, url, log)
            served.append(Served(url, proc, own_env, log))
        cluster = LocalCluster(
            redis_url, redis_proc, token, served[:nodes], served[nodes:], stack=stack
        )
        cluster.wait_nodes(nodes)
        yield cluster


def deploy_echo_everywhere(cluster: ClusterView, *, concurrency: int = 2) -> None:
    """Deploy the campaign's echo through the first gateway with one warm VM per node, and
    wait until every node says it holds it."""
    config = {"min_warm": 1, "max_vms": 3, "concurrency": concurrency, "timeout_s": 5.0}
    with cluster.http() as http:
        r = http.post(
            f"/v1/functions/{FUNCTION}",
            files={"module": ("echo.wasm", wat_module("echo"))},
            data={"config": json.dumps(config)},
        )
        if r.status_code != 201:
            raise BenchError(f"deploy failed: {r.status_code} {r.text[:200]}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        nodes = cluster.live_nodes()
        # Bound and loaded: free slots (a booting VM is in the record, without slots).
        if all(any(w["name"] == FUNCTION and w["free_slots"] for w in _warm(n)) for n in nodes):
            return
        time.sleep(0.2)
    raise BenchError(f"{FUNCTION} did not get a warm VM on every node")


def _warm(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**w, "name": w["ref"].rpartition("@")[0]} for w in node.get("warm", [])]


@dataclasses.dataclass
class NodeKillReport(Report):
    killed: str = ""
    recovered_s: float = 0.0  # kill -> every gateway lists one node fewer


def node_kill_campaign(
    cluster: ClusterView,
    *,
    clients: int = 4,
    duration_s: float = 20.0,
    kill_at_s: float = 6.0,
    progress: Progress = print,
) -> NodeKillReport:
    """Clients through every gateway in turn; at ``kill_at_s`` the node holding the most of
    the echo's VMs is killed with its QEMUs (kill -9 of its process group, or of its
    container)."""
    report = NodeKillReport(clients, duration_s)
    urls = cluster.gateway_urls()
    before = len(cluster.live_nodes())
    with load(urls, cluster.token, clients) as tally:
        time.sleep(kill_at_s)
        victim = max(cluster.live_nodes(), key=lambda n: (n["in_flight"], n["vms"]))
        tally.fault()
        killed_at = time.monotonic()
        cluster.kill_node(victim["id"])
        report.killed = victim["id"]
        report.faults.append(f"kill -9 node {victim['id']} ({victim['url']}) at {kill_at_s}s")
        progress(report.faults[-1])
        for gateway in range(len(urls)):
            cluster.wait_nodes(before - 1, timeout_s=30, gateway=gateway)
        report.recovered_s = round(time.monotonic() - killed_at, 2)
        progress(f"every gateway dropped it {report.recovered_s} s after the kill")
        time.sleep(max(0.0, duration_s - (time.monotonic() - killed_at) - kill_at_s))
    tally.fill(report)
    return report


@dataclasses.dataclass
class RollingReport(Report):
    restarted: list[str] = dataclasses.field(default_factory=list)
    failovers: int = 0  # calls a stopped gateway refused, sent to the other (as an LB does)


def rolling_restart_campaign(
    cluster: LocalCluster, *, clients: int = 4, settle_s: float = 2.0, progress: Progress = print
) -> RollingReport:
    """Clients through every gateway (failing over on a refused connection) while every node
    and then every gateway is restarted, one at a time; each next one waits until every
    gateway sees all nodes again."""
    report = RollingReport(clients, 0.0)
    urls = [g.url for g in cluster.gateways]
    count = len(cluster.nodes)
    started = time.monotonic()
    with load(urls, cluster.token, clients, failover=True) as tally:
        time.sleep(settle_s)
        for role, group in (("node", cluster.nodes), ("gateway", cluster.gateways)):
            for k in range(len(group)):
                tally.fault()
                at = time.monotonic() - started
                again = cluster.restart(group[k])
                for gateway in range(len(cluster.gateways)):
                    cluster.wait_nodes(count, timeout_s=60, gateway=gateway)
                took = time.monotonic() - started - at
                report.restarted.append(f"{role} {again.url} at {at:.1f}s, back in {took:.1f}s")
                progress(report.restarted[-1])
                time.sleep(settle_s)
    report.duration_s = round(time.monotonic() - started, 1)
    tally.fill(report)
    report.failovers = tally.failovers
    return report
