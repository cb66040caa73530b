"""What the gateway observes: Prometheus metrics and the dashboard's live snapshot.

Invocation metrics are recorded as each response is decided; pool metrics
(VMs by state, boots, evictions, reclaims, queue depth) are read from the pool
at scrape time, so they can never drift from it.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.metrics.hostcalls import HostcallCollector
from gateway.metrics.observation import Observation
from gateway.metrics.queue import QueueCollector
from gateway.relay import Relay
from scheduler.roles import Platform

# Latency buckets in seconds: TCG warm calls take ~10 ms, cold starts ~2 s.
BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
LATENCY_WINDOW_S = 60.0
RECENT_ERRORS = 20


class _PoolCollector(Collector):
    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    def collect(self) -> Iterator[Metric]:
        status = self._platform.pool.status()
        vms = GaugeMetricFamily("unifaas_vms", "microVMs on this node by state", labels=["state"])
        for state, count in status.by_state().items():
            vms.add_metric([state], count)
        yield vms
        yield GaugeMetricFamily(
            "unifaas_vm_capacity", "most microVMs this node may run", value=status.max_vms
        )
        if status.memory is not None:
            for name, value, help_text in (
                (
                    "unifaas_host_memory_available_bytes",
                    status.memory.available_mib,
                    "memory the host's kernel says is available (MemAvailable)",
                ),
                (
                    "unifaas_host_memory_reserve_bytes",
                    status.memory.reserve_mib,
                    "available memory no VM may take (UNIFAAS_MEMORY_RESERVE_MIB)",
                ),
                (
                    "unifaas_vm_memory_estimate_bytes",
                    status.memory.vm_mib,
                    "what the next microVM is expected to cost (measured VMs, with a margin)",
                ),
            ):
                yield GaugeMetricFamily(name, help_text, value=value * 1024 * 1024)
            yield GaugeMetricFamily(
                "unifaas_vm_memory_room",
                "microVMs the host's available memory takes now beyond those running",
                value=status.memory.room,
            )
        yield GaugeMetricFamily(
            "unifaas_queue_depth", "invocations waiting for a VM slot", value=status.queue_depth
        )
        yield GaugeMetricFamily(
            "unifaas_version_templates",
            "per-version snapshot templates held (UNIFAAS_VM_VERSION_TEMPLATES)",
            value=status.templates,
        )
        yield GaugeMetricFamily(
            "unifaas_version_templates_making",
            "per-version snapshot templates being made, each by a QEMU of its own",
            value=status.templates_making,
        )
        yield GaugeMetricFamily(
            "unifaas_boots_waiting",
            "microVM boots waiting for a boot slot (UNIFAAS_BOOT_CONCURRENCY)",
            value=status.boots_waiting,
        )
        for name, value, help_text in (
            ("unifaas_vm_boots", status.boots, "microVMs booted for the pool (not the template)"),
            ("unifaas_vm_restores", status.restores, "microVMs started from a snapshot"),
            (
                "unifaas_vm_preloaded",
                status.preloaded,
                "microVMs started from their version's template, the function already loaded",
            ),
            ("unifaas_vm_boot_failures", status.boot_failures, "microVM boots that failed"),
            ("unifaas_vm_evictions", status.evictions, "idle bound VMs evicted to make room"),
            ("unifaas_vm_reclaims", status.reclaims, "idle VMs reclaimed after keep-alive"),
            (
                "unifaas_vm_pressure_evictions",
                status.pressure_evictions,
                "idle VMs stopped while available memory was below the reserve",
            ),
            ("unifaas_vm_deaths", status.deaths, "VMs found dead"),
            ("unifaas_vm_hung", status.hung, "VMs killed for missing a ping deadline"),
            (
                "unifaas_vm_doubts",
                status.doubts,
                "VMs passed by for new calls while a ping went unanswered",
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        records = self._platform.records
        yield GaugeMetricFamily(
            "unifaas_records_pending",
            "invocation records waiting to be written (kept while Redis is away)",
            value=records.pending,
        )
        yield CounterMetricFamily(
            "unifaas_records_dropped",
            "invocation records dropped because the buffer was full while Redis was away",
            value=records.dropped,
        )
        bound = GaugeMetricFamily(
            "unifaas_function_vms", "bound VMs per function version", labels=["function"]
        )
        for fn in status.functions:
            bound.add_metric([str(fn.ref)], fn.vms)
        yield bound
        yield from _autoscaler_metrics(self._platform)


def _autoscaler_metrics(platform: Platform) -> Iterator[Metric]:
    autoscaler = platform.autoscaler
    labels = ["function"]
    desired = GaugeMetricFamily(
        "unifaas_autoscaler_desired_vms", "VMs the autoscaler wants per function", labels=labels
    )
    demand = GaugeMetricFamily(
        "unifaas_autoscaler_in_flight",
        "calls in flight (running or waiting), averaged over the stable window",
        labels=labels,
    )
    panic = GaugeMetricFamily(
        "unifaas_autoscaler_panic", "1 while a function's demand doubled lately", labels=labels
    )
    for name, decision in sorted(autoscaler.decisions.items()):
        desired.add_metric([name], decision.desired)
        demand.add_metric([name], decision.stable_avg)
        panic.add_metric([name], 1.0 if decision.panic else 0.0)
    ups = CounterMetricFamily(
        "unifaas_autoscaler_scale_ups", "times the autoscaler asked for more VMs", labels=labels
    )
    for name, count in sorted(autoscaler.scale_ups.items()):
        ups.add_metric([name], count)
    yield from (desired, demand, panic, ups)


class _ClusterCollector(Collector):
    """A gateway's view of its nodes, from their heartbeats and its own calls to them."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        nodes = self._relay.nodes
        known = nodes.known()
        yield GaugeMetricFamily(
            "unifaas_nodes", "nodes this gateway places calls on", value=len(nodes.alive())
        )
        labels = ["node"]
        gauges = {
            name: GaugeMetricFamily(f"unifaas_node_{name}", help_text, labels=labels)
            for name, help_text in (
                ("vms", "microVMs on a node, as its last heartbeat said"),
                ("max_vms", "most microVMs a node may run"),
                ("room", "VMs a node can start or bind now, as its last heartbeat said"),
                ("in_flight", "calls on a node, as its last heartbeat said"),
                ("relaying", "calls this gateway has on a node now"),
                ("up", "1 while this gateway places calls on a node"),
            )
        }
        for node, up in known:
            for name, value in (
                ("vms", node.vms),
                ("max_vms", node.max_vms),
                ("room", node.room),
                ("in_flight", node.in_flight),
                ("relaying", nodes.in_flight[node.id]),
                ("up", 1 if up else 0),
            ):
                gauges[name].add_metric([node.id], value)
        yield from gauges.values()
        dropped = CounterMetricFamily(
            "unifaas_node_dropped",
            "times this gateway stopped placing calls on a node (unreachable, refused, stopping)",
            labels=labels,
        )
        for node_id, count in sorted(nodes.failures.items()):
            dropped.add_metric([node_id], count)
        yield dropped
        yield CounterMetricFamily(
            "unifaas_relay_reruns",
            "calls run again on another node after the connection to theirs broke",
            value=self._relay.reruns,
        )


class Telemetry:
    """Metrics registry plus the short in-memory history the dashboard shows."""

    def __init__(self, platform: Platform | None, relay: Relay | None = None) -> None:
        self.platform = platform
        self.relay = relay
        self.registry = CollectorRegistry()
        self.invocations = Counter(
            "unifaas_invocations",
            "invocations by function, ABI (raw, wagi, http), outcome and start kind",
            ["function", "abi", "outcome", "start"],
            registry=self.registry,
        )
        self.retries = Counter(
            "unifaas_invocation_retries",
            "invocations run again on another VM after theirs was lost",
            ["function"],
            registry=self.registry,
        )
        self.errors = Counter(
            "unifaas_errors", "failed invocations by error kind", ["kind"], registry=self.registry
        )
        self.latency = Histogram(
            "unifaas_invocation_seconds",
            "end-to-end invocation latency in the gateway",
            ["function", "abi"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.vm_latency = Histogram(
            "unifaas_invocation_vm_seconds",
            "part of an invocation spent running in the VM",
            ["function", "abi"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.async_accepted = Counter(
            "unifaas_async_accepted",
            "async calls queued (202) by function",
            ["function"],
            registry=self.registry,
        )
        self.queue = QueueCollector()
        self.registry.register(self.queue)
        if platform is not None:
            self.registry.register(_PoolCollector(platform))
            self.registry.register(HostcallCollector(platform.capabilities.stats))
        if relay is not None:
            self.registry.register(_ClusterCollector(relay))
        self._window: collections.deque[tuple[float, float]] = collections.deque()
        self._recent_errors: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=RECENT_ERRORS
        )
        self._total = 0
        self._error_total = 0

    def observe(self, seen: Observation) -> None:
        """Record one invocation as answered."""
        self.invocations.labels(seen.function, seen.abi, seen.outcome, seen.start).inc()
        self.latency.labels(seen.function, seen.abi).observe(seen.total_ms / 1000)
        if seen.retries:
            self.retries.labels(seen.function).inc(seen.retries)
        if seen.run_ms is not None:
            self.vm_latency.labels(seen.function, seen.abi).observe(seen.run_ms / 1000)
        now = time.time()
        self._total += 1
        self._window.append((now, seen.total_ms))
        # Trimmed here, not only when the dashboard reads it: unread, it held every call
        # (the hour-long soak saw the node's RSS grow 8 MiB every 5 minutes).
        self._trim(now)
        if seen.kind is not None:
            self._error_total += 1
            self.errors.labels(seen.kind).inc()
            self._recent_errors.appendleft(
                {
                    "time": now,
                    "function": seen.function,
                    "kind": seen.kind,
                    "status": seen.status,
                    "message": seen.message[:300],
                    "invocation_id": seen.invocation_id,
                }
            )

    def async_accepted_call(self, function: str) -> None:
        self.async_accepted.labels(function).inc()

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    def _trim(self, now: float) -> None:
        while self._window and self._window[0][0] < now - LATENCY_WINDOW_S:
            self._window.popleft()

    def _latency(self, now: float) -> dict[str, Any]:
        self._trim(now)
        samples = sorted(ms for _, ms in self._window)

        def pct(p: float) -> float | None:
            if not samples:
                return None
            return round(samples[min(len(samples) - 1, math.ceil(p * len(samples)) - 1)], 3)

        return {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "window_s": LATENCY_WINDOW_S,
            "count": len(samples),
        }

    def dashboard_data(self) -> dict[str, Any]:
        if self.platform is None:
            return self._cluster_data() if self.relay is not None else {}
        now = time.time()
        status = self.platform.pool.status()
        decisions = self.platform.autoscaler.decisions

        def wanted(name: str) -> dict[str, Any]:
            """The autoscaler's latest word on a busy function (None when it is not busy)."""
            decision = decisions.get(name)
            if decision is None:
                return {"wanted": None, "panic": False}
            return {"wanted": decision.desired, "panic": decision.panic}

        return {
            "time": now,
            "node": self.platform.node_id,
            "pool": {
                "vms": status.vms,
                "max_vms": status.max_vms,
                **status.by_state(),
                "queue_depth": status.queue_depth,
            },
            "totals": {
                "invocations": self._total,
                "errors": self._error_total,
                "starts": {kind.value: n for kind, n in status.starts.items()},
                "boots": status.boots,
                "restores": status.restores,
                "preloaded": status.preloaded,
                "evictions": status.evictions,
                "reclaims": status.reclaims,
                "retries": status.retries,
            },
            "latency_ms": self._latency(now),
            "functions": [
                {
                    "key": str(fn.ref),
                    "vms": fn.vms,
                    "in_flight": fn.in_flight,
                    **wanted(fn.ref.name),
                }
                for fn in status.functions
            ],
            "recent_errors": list(self._recent_errors),
        }

    def _cluster_data(self) -> dict[str, Any]:
        """A gateway's dashboard: its own calls, and the nodes' VMs as their beats said
        (a heartbeat does not split VMs by state: the bound ones are those serving)."""
        assert self.relay is not None
        now = time.time()
        nodes = self.relay.nodes.alive()
        warm = self.relay.nodes.vms_of()
        bound = sum(f.vms for f in warm)
        vms = sum(n.vms for n in nodes)
        return {
            "time": now,
            "node": f"gateway {self.relay.nodes_label()}",
            "pool": {
                "vms": vms,
                "max_vms": sum(n.max_vms for n in nodes),
                "booting": 0,
                "idle": max(0, vms - bound),
                "loading": 0,
                "bound": bound,
                "draining": 0,
                "queue_depth": sum(n.queue_depth for n in nodes),
            },
            "totals": {"invocations": self._total, "errors": self._error_total, "starts": {}},
            "latency_ms": self._latency(now),
            "functions": [
                {
                    "key": str(f.ref),
                    "vms": f.vms,
                    "in_flight": f.in_flight,
                    "wanted": None,
                    "panic": False,
                }
                for f in warm
            ],
            "recent_errors": list(self._recent_errors),
        }
