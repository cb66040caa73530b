"""Per-function admission: the in-flight cap and the token-bucket rate, on a fake clock."""

from __future__ import annotations

import pytest

from scheduler.errors import Throttled
from scheduler.model import Admission, FunctionConfig
from scheduler.scaling.admission import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_in_flight_cap_counts_calls_until_they_leave() -> None:
    throttle = Throttle()
    limits = Admission(max_in_flight=2)
    with throttle.admit("f", limits), throttle.admit("f", limits):
        assert throttle.in_flight("f") == 2
        with pytest.raises(Throttled, match="max_in_flight 2"), throttle.admit("f", limits):
            pass
        with throttle.admit("g", limits):  # another function has its own places
            assert throttle.in_flight("g") == 1
    assert throttle.in_flight("f") == 0
    with throttle.admit("f", limits):
        pass


def test_a_call_that_fails_still_gives_its_place_back() -> None:
    throttle = Throttle()
    with pytest.raises(RuntimeError), throttle.admit("f", Admission(max_in_flight=1)):
        raise RuntimeError("the call failed")
    assert throttle.in_flight("f") == 0


def test_the_rate_allows_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    limits = Admission(max_in_flight=100, rate=2.0, burst=2)
    for _ in range(2):
        with throttle.admit("f", limits):
            pass
    with pytest.raises(Throttled) as refused, throttle.admit("f", limits):
        pass
    assert refused.value.retry_after_s == 1  # half a second, rounded up to whole seconds
    assert throttle.in_flight("f") == 0  # a refused call takes no place
    clock.now += 0.5
    with throttle.admit("f", limits):
        pass
    with pytest.raises(Throttled), throttle.admit("f", limits):
        pass
    clock.now += 60  # a long quiet refills only up to the burst
    for _ in range(2):
        with throttle.admit("f", limits):
            pass
    with pytest.raises(Throttled), throttle.admit("f", limits):
        pass


def test_a_slow_rate_asks_for_a_longer_wait() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    limits = Admission(max_in_flight=10, rate=0.1, burst=1)
    with throttle.admit("f", limits):
        pass
    with pytest.raises(Throttled) as refused, throttle.admit("f", limits):
        pass
    assert refused.value.retry_after_s == 10
    throttle.forget("f")  # a deleted function starts afresh
    with throttle.admit("f", limits):
        pass


@pytest.mark.parametrize(
    ("config", "admission"),
    [
        (FunctionConfig(), Admission(max_in_flight=32)),
        (FunctionConfig(max_vms=1, concurrency=1), Admission(max_in_flight=2)),
        (FunctionConfig(max_in_flight=5), Admission(max_in_flight=5)),
        (FunctionConfig(rate_limit=0.5), Admission(max_in_flight=32, rate=0.5, burst=1)),
        (FunctionConfig(rate_limit=10), Admission(max_in_flight=32, rate=10, burst=10)),
    ],
)
def test_a_function_config_gives_its_admission(
    config: FunctionConfig, admission: Admission
) -> None:
    assert config.admission == admission
