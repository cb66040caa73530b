"""Benchmarks: the sandbox bench and the platform bench, each printing ratios against a
baseline measured in the same run (``unifaas bench sandbox|platform``)."""
