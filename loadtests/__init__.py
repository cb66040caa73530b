"""Load tests (locust scenarios, run as scripts) and the benchmark harness (``bench``)."""
