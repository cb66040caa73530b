"""The async queue in ``/metrics``: its depth and age (asked of Redis at scrape time) and
what this node's worker did with the calls it took."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.asyncq import AsyncWorker, QueueStats


class QueueCollector(Collector):
    def __init__(self) -> None:
        self.stats: QueueStats | None = None  # refreshed before each scrape
        self.worker: AsyncWorker | None = None  # a node's; None on a gateway

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        yield GaugeMetricFamily(
            "unifaas_async_queue_readable",
            "1 when the async queue's depth could be read from Redis at this scrape",
            value=0 if stats is None else 1,
        )
        if stats is not None:
            depth = GaugeMetricFamily(
                "unifaas_async_queue_depth",
                "async calls by state: queued (not taken), running (taken by a node), "
                "delayed (waiting for a retry), dead (dead-letters kept)",
                labels=["state"],
            )
            for state in ("queued", "running", "delayed", "dead"):
                depth.add_metric([state], getattr(stats, state))
            yield depth
            yield GaugeMetricFamily(
                "unifaas_async_queue_oldest_age_seconds",
                "age of the oldest async call on the queue (taken or not)",
                value=stats.oldest_age_s,
            )
        worker = self.worker
        if worker is not None:
            yield GaugeMetricFamily(
                "unifaas_async_running", "async calls running on this node", value=worker.running
            )
            handled = CounterMetricFamily(
                "unifaas_async_calls",
                "async calls this node took, by what came of them (started, succeeded, "
                "failed, retried, dead, claimed from a silent node, duplicate: ended "
                "already elsewhere, stale: nothing to run, callback ...)",
                labels=["outcome"],
            )
            for outcome, count in sorted(worker.counts.items()):
                handled.add_metric([outcome], count)
            yield handled
