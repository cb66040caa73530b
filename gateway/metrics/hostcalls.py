"""Hostcalls in ``/metrics``: how many this node served, by kind and outcome, and how long
they took (read from the node's :class:`~scheduler.hostcalls.session.HostcallStats` at scrape
time, so they cannot drift from it)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.hostcalls import LATENCY_BUCKETS, HostcallStats


class HostcallCollector(Collector):
    def __init__(self, stats: HostcallStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        answers = CounterMetricFamily(
            "unifaas_hostcalls",
            "hostcalls served by kind (kv_get, kv_set, ..., http) and outcome (ok or the "
            "refusal's status: host_denied, quota_keys, ...)",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), count in sorted(self._stats.answers.items()):
            answers.add_metric([kind, outcome], count)
        yield answers
        latency = HistogramMetricFamily(
            "unifaas_hostcall_seconds",
            "time the host took to serve a hostcall, by kind",
            labels=["kind"],
        )
        for kind, observed in sorted(self._stats.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BUCKETS, observed.buckets, strict=True):
                cumulative += count
                buckets.append((str(bound), cumulative))
            buckets.append(("+Inf", observed.count))
            latency.add_metric([kind], buckets, observed.total_s)
        yield latency
