from __future__ import annotations

import itertools
import threading

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction_breaker import (
    TRANSITIONS,
    Admission,
    BreakerState,
    ExtractionBreaker,
    IllegalTransition,
    _Event,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: ExtractionBreaker, n: int = 1) -> None:
    for _ in range(n):
        breaker.record(breaker.admit(), failed=True, duration=0.0)


@pytest.mark.parametrize(
    "state, event", [pytest.param(s, e, id=f"{s.value} + {e.value}") for s, e in itertools.product(BreakerState, _Event)]
)
def test_transition_table(state: BreakerState, event: _Event) -> None:
    breaker = ExtractionBreaker()
    breaker._state = state
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            breaker._apply(event)
        assert breaker.state is state  # an illegal transition changes nothing
    else:
        assert breaker._apply(event) == (state, expected, event)
        assert breaker.state is expected


def test_opens_after_consecutive_failures_only() -> None:
    breaker = ExtractionBreaker(failure_threshold=3)
    fail(breaker, 2)
    breaker.record(breaker.admit(), failed=False, duration=0.0)  # resets the run
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_one_slow_call_opens() -> None:
    breaker = ExtractionBreaker(slow_call=0.05)
    breaker.record(breaker.admit(), failed=False, duration=0.05)  # not slower than the limit
    assert breaker.state is BreakerState.CLOSED
    breaker.record(breaker.admit(), failed=False, duration=0.051)
    assert breaker.state is BreakerState.OPEN


def test_half_open_admits_exactly_one_probe() -> None:
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=1, open_for=60, clock=clock)
    fail(breaker)
    assert breaker.admit() is Admission.REJECT
    assert breaker.retry_after() == 60
    clock.now = 59.999
    assert breaker.admit() is Admission.REJECT
    clock.now = 60.0
    assert breaker.admit() is Admission.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert [breaker.admit() for _ in range(5)] == [Admission.REJECT] * 5
    assert breaker.retry_after() == 0


def test_failed_probe_reopens_for_a_full_period() -> None:
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=1, open_for=60, clock=clock)
    fail(breaker)
    clock.now = 61
    probe = breaker.admit()
    breaker.record(probe, failed=True, duration=0.0)
    assert breaker.state is BreakerState.OPEN
    clock.now = 61 + 59
    assert breaker.admit() is Admission.REJECT
    clock.now = 61 + 60
    assert breaker.admit() is Admission.PROBE


def test_slow_probe_reopens() -> None:
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=1, clock=clock)
    fail(breaker)
    clock.now = 60
    breaker.record(breaker.admit(), failed=False, duration=1.0)
    assert breaker.state is BreakerState.OPEN


def test_late_reports_from_before_opening_are_ignored() -> None:
    breaker = ExtractionBreaker(failure_threshold=1)
    early = breaker.admit()
    fail(breaker)
    breaker.record(early, failed=False, duration=0.0)
    assert breaker.state is BreakerState.OPEN


def test_exactly_one_probe_under_concurrency() -> None:
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=1, clock=clock)
    fail(breaker)
    clock.now = 60
    results: list[Admission] = []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        admission = breaker.admit()
        with lock:
            results.append(admission)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results.count(Admission.PROBE) == 1
    assert results.count(Admission.REJECT) == 31


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"failure_threshold": 0}, id="zero threshold"),
        pytest.param({"failure_threshold": 2.5}, id="float threshold"),
        pytest.param({"slow_call": 0}, id="zero slow_call"),
        pytest.param({"open_for": -1}, id="negative open_for"),
        pytest.param({"open_for": float("nan")}, id="nan open_for"),
    ],
)
def test_bad_options(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        ExtractionBreaker(**options)  # type: ignore[arg-type]
