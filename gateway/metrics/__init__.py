"""What the gateway observes and shows: the Prometheus metrics and the dashboard's snapshot
(:mod:`~gateway.metrics.telemetry`), one answered call as they see it
(:mod:`~gateway.metrics.observation`), and the node's hostcalls
(:mod:`~gateway.metrics.hostcalls`) and the async queue (:mod:`~gateway.metrics.queue`) as
metrics read at scrape time.
"""
