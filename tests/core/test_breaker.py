"""Tests for graywsgi.core.breaker: RouteBreaker."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import typing as t

import pytest

from graywsgi.core.breaker import Admission, RouteBreaker
from graywsgi.core.breaker_listener import BreakerListener
from graywsgi.core.breaker_policy import BreakerPolicy
from graywsgi.core.breaker_state import BreakerState
from graywsgi.core.window import SlidingWindow, WindowTotals
from graywsgi.errors import ConfigurationError
from tests.core.conftest import CLOSED, HALF_OPEN, OPEN, Clock, Recorder, make


class Raising(BreakerListener):
    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        raise RuntimeError("listener bug")

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        raise RuntimeError("listener bug")


def send(breaker: RouteBreaker, n: int, *, error: bool = False, slow: bool = False) -> list[Admission]:
    admissions = []
    for _ in range(n):
        admission = breaker.admit()
        breaker.record(admission, error=error, slow=slow)
        admissions.append(admission)
    return admissions


def trip_it(breaker: RouteBreaker) -> None:
    send(breaker, breaker.policy.min_requests, error=True)
    assert breaker.state is OPEN


def half_open(breaker: RouteBreaker, clock: Clock) -> list[Admission]:
    """Trip it, let the cooldown pass and hand out every probe."""
    trip_it(breaker)
    clock.now += breaker.policy.cooldown
    probes = [breaker.admit() for _ in range(breaker.policy.probes)]
    assert probes == [Admission.PROBE] * breaker.policy.probes
    assert breaker.state is HALF_OPEN
    return probes


class SleepyClock(Clock):
    """A clock that sleeps when read: every read is a thread switch, also
    inside the breaker's critical sections."""

    def __call__(self) -> float:
        time.sleep(0.0002)
        return self.now


class SleepyPolicy:
    """Wraps a policy; every field read sleeps (a thread switch between the
    breaker's read of its probe count and its write)."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self._policy = policy

    def __getattr__(self, name: str) -> t.Any:
        time.sleep(0.0002)
        return getattr(self._policy, name)


def hammer(count: int, target: t.Callable[[], list[Admission]]) -> list[Admission]:
    """Run ``target`` in ``count`` threads at once; return every admission,
    and fail if a thread raised."""
    barrier = threading.Barrier(count)
    results: list[Admission] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            mine = target()
        except BaseException as exc:  # noqa: BLE001 -- reported below
            with lock:
                errors.append(exc)
            return
        with lock:
            results.extend(mine)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    return results


def fill(window: SlidingWindow, requests: int, errors: int) -> None:
    for n in range(requests):
        window.record(error=n < errors, slow=False)


# -- the trip rule ---------------------------------------------------------


@pytest.mark.parametrize(
    "requests, errors, state",
    [
        pytest.param(19, 19, CLOSED, id="19 errors: below min volume"),
        pytest.param(20, 7, CLOSED, id="7 of 20 is exactly 35 percent: not above"),
        pytest.param(20, 8, OPEN, id="8 of 20 is 40 percent: trips at exactly min volume"),
        pytest.param(20, 20, OPEN, id="all errors"),
        pytest.param(40, 14, CLOSED, id="14 of 40 is exactly 35 percent"),
        pytest.param(40, 15, OPEN, id="15 of 40 is above"),
    ],
)
def test_trip_rule(requests: int, errors: int, state: BreakerState) -> None:
    # Successes first, errors last: the rule is only met, if at all, by the last request.
    breaker, _, recorder = make()
    send(breaker, requests - errors)
    send(breaker, errors, error=True)
    assert breaker.state is state
    assert len(recorder.trips) == (state is OPEN)


def test_trips_on_the_request_that_reaches_min_volume() -> None:
    breaker, _, recorder = make()
    send(breaker, 19, error=True)
    assert breaker.state is CLOSED
    send(breaker, 1)  # a success brings the volume to 20 at 95 % errors
    assert breaker.state is OPEN
    ((route, totals, reason),) = recorder.trips
    assert route == "canary"
    assert totals == WindowTotals(20, 19, 0)
    assert "95.0%" in reason


@pytest.mark.parametrize(
    "slow_rate, slow_calls, state",
    [
        pytest.param(0.5, 11, OPEN, id="11 of 20 slow is above 50 percent"),
        pytest.param(0.5, 10, CLOSED, id="10 of 20 slow is exactly 50 percent"),
        pytest.param(None, 20, CLOSED, id="slow_rate None: slow calls never trip"),
    ],
)
def test_slow_rate(slow_rate: float | None, slow_calls: int, state: BreakerState) -> None:
    breaker, _, recorder = make(BreakerPolicy(slow_rate=slow_rate))
    send(breaker, 20 - slow_calls)
    send(breaker, slow_calls, slow=True)
    assert breaker.state is state
    if state is OPEN:
        assert "slow-call rate 55.0%" in recorder.trips[0][2]


@pytest.mark.parametrize(
    "baseline_requests, baseline_errors, canary_errors, margin, state",
    [
        pytest.param(20, 6, 8, 0.2, CLOSED, id="canary 40 vs stable 30, margin 0.2: no trip"),
        pytest.param(20, 1, 8, 0.2, OPEN, id="canary 40 vs stable 5, margin 0.2: trip"),
        pytest.param(20, 6, 8, 0.1, CLOSED, id="40 - 30 is exactly the margin 0.1: not more"),
        pytest.param(20, 0, 8, 0.0, OPEN, id="margin 0: any excess trips"),
        pytest.param(20, 20, 20, 0.0, CLOSED, id="both fail entirely: canary is no worse"),
        pytest.param(19, 0, 8, 0.2, OPEN, id="baseline below min volume: absolute rule, 40 above 35"),
        pytest.param(19, 0, 7, 0.2, CLOSED, id="baseline below min volume: absolute rule, 35 not above"),
        pytest.param(0, 0, 6, 0.2, CLOSED, id="empty baseline: absolute rule, 30 not above"),
    ],
)
def test_relative_mode(
    baseline_requests: int, baseline_errors: int, canary_errors: int, margin: float, state: BreakerState
) -> None:
    stable = SlidingWindow(clock=Clock())
    fill(stable, baseline_requests, baseline_errors)
    breaker, _, _ = make(BreakerPolicy(relative_margin=margin), baseline=stable)
    send(breaker, 20 - canary_errors)
    send(breaker, canary_errors, error=True)
    assert breaker.state is state


def test_relative_reason_names_both_rates() -> None:
    stable = SlidingWindow(clock=Clock())
    fill(stable, 20, 1)
    breaker, _, recorder = make(BreakerPolicy(relative_margin=0.2), baseline=stable)
    send(breaker, 12)
    send(breaker, 8, error=True)
    reason = recorder.trips[0][2]
    assert "40.0%" in reason and "5.0%" in reason and "20.0%" in reason


def test_old_errors_leave_the_window() -> None:
    breaker, clock, _ = make(BreakerPolicy(window_buckets=10))
    send(breaker, 19, error=True)
    clock.now += 10  # the 19 errors have left the window
    send(breaker, 12)
    send(breaker, 8, error=True)
    assert breaker.window.totals() == WindowTotals(20, 8, 0)
    assert breaker.state is OPEN


# -- open: reroute --------------------------------------------------------


def test_open_rejects_until_the_cooldown_has_elapsed() -> None:
    breaker, clock, _ = make(BreakerPolicy(cooldown=30))
    trip_it(breaker)
    opened = clock.now
    assert breaker.opened_at == opened
    assert send(breaker, 100) == [Admission.REJECT] * 100
    assert breaker.window.totals().requests == 20  # rejected requests are not counted
    assert breaker.retry_after() == 30
    clock.now = opened + 29.999
    assert breaker.admit() is Admission.REJECT
    assert breaker.retry_after() == pytest.approx(0.001)
    clock.now = opened + 30
    assert breaker.admit() is Admission.PROBE
    assert breaker.state is HALF_OPEN
    assert breaker.retry_after() == 0


# -- half-open: probes ----------------------------------------------------


def test_half_open_hands_out_exactly_probes() -> None:
    breaker, clock, _ = make(BreakerPolicy(probes=5))
    half_open(breaker, clock)
    assert [breaker.admit() for _ in range(10)] == [Admission.REJECT] * 10


@pytest.mark.parametrize(
    "sleepy",
    [
        pytest.param(False, id="plain"),
        pytest.param(True, id="forced race: thread switch inside every read of clock and policy"),
    ],
)
def test_half_open_hands_out_exactly_probes_under_16_threads(
    sleepy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SleepyClock() if sleepy else Clock()
    breaker = RouteBreaker("canary", BreakerPolicy(probes=5), clock=clock)
    trip_it(breaker)
    clock.now += 30  # every thread finds the cooldown elapsed at once
    if sleepy:
        monkeypatch.setattr(breaker, "policy", SleepyPolicy(breaker.policy))
    results = hammer(16, lambda: [breaker.admit() for _ in range(20)])
    assert results.count(Admission.PROBE) == 5
    assert results.count(Admission.REJECT) == 16 * 20 - 5
    assert breaker.state is HALF_OPEN


def test_all_probes_healthy_close_it_with_an_empty_window() -> None:
    breaker, clock, recorder = make(BreakerPolicy(probes=3))
    probes = half_open(breaker, clock)
    for probe in probes[:-1]:
        breaker.record(probe, error=False, slow=False)
        assert breaker.state is HALF_OPEN
    breaker.record(probes[-1], error=False, slow=False)
    assert breaker.state is CLOSED
    assert breaker.opened_at is None
    assert breaker.window.totals() == WindowTotals(0, 0, 0)
    assert breaker.admit() is Admission.PASS
    assert recorder.states == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert len(recorder.trips) == 1


@pytest.mark.parametrize(
    "error, slow",
    [pytest.param(True, False, id="probe errored"), pytest.param(False, True, id="probe was slow")],
)
def test_one_failed_probe_reopens_and_alerts_again(error: bool, slow: bool) -> None:
    breaker, clock, recorder = make(BreakerPolicy(probes=3, slow_rate=0.5, cooldown=30))
    probes = half_open(breaker, clock)
    breaker.record(probes[0], error=False, slow=False)
    breaker.record(probes[1], error=error, slow=slow)
    assert breaker.state is OPEN
    assert breaker.opened_at == clock.now  # a new cooldown
    assert len(recorder.trips) == 2  # a new trip
    assert recorder.trips[1][2] == ("probe failed" if error else "probe was slow")
    breaker.record(probes[2], error=False, slow=False)  # the last probe reports late: ignored
    assert breaker.state is OPEN
    clock.now += 29
    assert breaker.admit() is Admission.REJECT
    clock.now += 1
    assert breaker.admit() is Admission.PROBE


def test_slow_probe_is_healthy_when_slow_calls_never_trip() -> None:
    breaker, clock, _ = make(BreakerPolicy(probes=2))
    for probe in half_open(breaker, clock):
        breaker.record(probe, error=False, slow=True)
    assert breaker.state is CLOSED


# -- late and stray reports -------------------------------------------------


def test_late_pass_reports_are_ignored() -> None:
    breaker, clock, recorder = make()
    early = [breaker.admit() for _ in range(5)]  # admitted while closed
    trip_it(breaker)
    for admission in early:
        breaker.record(admission, error=True, slow=False)
    assert breaker.window.totals() == WindowTotals(20, 20, 0)
    assert len(recorder.trips) == 1
    clock.now += 30
    probe = breaker.admit()
    breaker.record(Admission.PASS, error=True, slow=False)  # still from before
    assert breaker.state is HALF_OPEN
    breaker.record(probe, error=False, slow=False)


def test_stray_probe_reports_are_ignored() -> None:
    breaker, clock, _ = make(BreakerPolicy(probes=2))
    breaker.record(Admission.PROBE, error=True, slow=False)  # closed: ignored
    assert breaker.state is CLOSED
    assert breaker.window.totals().requests == 0
    probes = half_open(breaker, clock)
    breaker.record(probes[0], error=False, slow=False)
    breaker.reset()
    breaker.record(probes[1], error=True, slow=False)  # arrives after the resume
    assert breaker.state is CLOSED


def test_more_probe_reports_than_probes_are_ignored() -> None:
    breaker, clock, _ = make(BreakerPolicy(probes=3))
    trip_it(breaker)
    clock.now += 30
    probe = breaker.admit()
    for _ in range(5):  # one probe out, reported five times
        breaker.record(probe, error=False, slow=False)
    assert breaker.state is HALF_OPEN


def test_rejections_are_never_recorded() -> None:
    breaker, _, _ = make()
    breaker.record(Admission.REJECT, error=True, slow=True)
    assert breaker.window.totals().requests == 0


# -- alerts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "sleepy",
    [
        pytest.param(False, id="plain"),
        pytest.param(True, id="forced race: thread switch inside every clock read"),
    ],
)
def test_on_trip_fires_once_under_16_threads_hammering_errors(
    sleepy: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="graywsgi.breaker")
    clock = SleepyClock() if sleepy else Clock()
    recorder = Recorder()
    breaker = RouteBreaker("canary", clock=clock, listeners=[recorder])
    results = hammer(16, lambda: send(breaker, 100, error=True))
    assert breaker.state is OPEN
    assert len(recorder.trips) == 1
    assert recorder.states == [(CLOSED, OPEN)]
    assert results.count(Admission.REJECT) > 0
    assert 20 <= breaker.window.totals().requests < 16 * 100
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1


def test_trip_logs_one_warning_with_route_and_totals(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="graywsgi.breaker")
    breaker, _, _ = make()
    send(breaker, 12)
    send(breaker, 8, error=True)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "graywsgi.breaker"
    message = record.getMessage()
    assert "'canary'" in message
    assert "20 requests, 8 errors (40.0%), 0 slow (0.0%)" in message
    assert record.graywsgi_route == "canary"  # type: ignore[attr-defined]
    assert record.graywsgi_window == {"requests": 20, "errors": 8, "slow": 0}  # type: ignore[attr-defined]


def test_raising_listeners_are_logged_and_never_break_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    breaker, clock, first = make(listeners=[Raising(), recorder])
    trip_it(breaker)  # must not raise
    clock.now += 30
    for probe in [breaker.admit() for _ in range(5)]:
        breaker.record(probe, error=False, slow=False)
    assert breaker.state is CLOSED
    # listeners after the raising one still ran
    assert first.states == recorder.states == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert len(recorder.trips) == 1
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 4  # three state changes and one trip
    assert all(r.name == "graywsgi.breaker" and r.exc_info for r in failures)


def test_listeners_run_after_the_lock_is_released() -> None:
    seen: list[bool] = []

    class Probing(BreakerListener):
        def __init__(self) -> None:
            self.breaker: RouteBreaker | None = None

        def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
            assert self.breaker is not None
            free = self.breaker._lock.acquire(blocking=False)
            if free:
                self.breaker._lock.release()
            seen.append(free)
            self.breaker.snapshot()  # calling back in works

        def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
            self.on_state_change(route, CLOSED, OPEN, reason)

    listener = Probing()
    breaker, clock, _ = make(listeners=[listener])
    listener.breaker = breaker
    trip_it(breaker)
    clock.now += 30
    breaker.admit()
    breaker.reset()
    assert seen == [True] * 4


# -- kill switch and resume -----------------------------------------------


def test_manual_trip_holds_it_open_until_reset() -> None:
    breaker, clock, recorder = make()
    assert breaker.trip("rollback by alice") is True
    assert breaker.trip() is False  # held already
    assert breaker.state is OPEN and breaker.held
    assert recorder.trips[0][2] == "rollback by alice"
    assert len(recorder.trips) == 1
    clock.now += 3600  # no cooldown, no probes while held
    assert send(breaker, 10) == [Admission.REJECT] * 10
    assert breaker.retry_after() == 30
    assert breaker.reset("resume") is True
    assert breaker.reset() is False
    assert breaker.state is CLOSED and not breaker.held
    assert breaker.admit() is Admission.PASS
    assert recorder.states == [(CLOSED, OPEN), (OPEN, CLOSED)]


def test_manual_trip_of_an_open_breaker_holds_it_without_a_second_alert() -> None:
    breaker, clock, recorder = make()
    trip_it(breaker)
    opened = breaker.opened_at
    assert breaker.trip() is True
    assert breaker.held and breaker.opened_at == opened
    assert len(recorder.trips) == 1
    assert recorder.states == [(CLOSED, OPEN)]
    clock.now += 60
    assert breaker.admit() is Admission.REJECT


def test_manual_trip_while_half_open_is_a_trip() -> None:
    breaker, clock, recorder = make()
    probes = half_open(breaker, clock)
    assert breaker.trip() is True
    assert breaker.state is OPEN
    assert len(recorder.trips) == 2
    for probe in probes:
        breaker.record(probe, error=False, slow=False)  # late probes cannot close it
    assert breaker.state is OPEN


def test_reset_empties_the_window() -> None:
    breaker, _, recorder = make()
    send(breaker, 19, error=True)
    assert breaker.reset() is False  # it was closed
    assert breaker.window.totals() == WindowTotals(0, 0, 0)
    send(breaker, 19, error=True)
    assert breaker.state is CLOSED
    assert recorder.changes == []


# -- adopted state --------------------------------------------------------


def test_apply_state_open_fires_no_trip() -> None:
    breaker, clock, recorder = make(BreakerPolicy(cooldown=30))
    assert breaker.apply_state(OPEN, clock.now - 10, "store: tripped on host-2") is True
    assert breaker.state is OPEN
    assert recorder.trips == []
    assert recorder.changes == [("canary", CLOSED, OPEN, "store: tripped on host-2")]
    assert breaker.admit() is Admission.REJECT
    clock.now += 20  # the cooldown ends when the tripping process's does
    assert breaker.admit() is Admission.PROBE


def test_apply_state_same_state_changes_nothing_but_aligns_the_cooldown() -> None:
    breaker, clock, recorder = make()
    trip_it(breaker)
    assert breaker.apply_state(OPEN, clock.now - 25, "store") is False
    assert breaker.opened_at == clock.now - 25
    assert recorder.states == [(CLOSED, OPEN)]
    assert breaker.apply_state(CLOSED, None, "store") is True
    assert breaker.apply_state(CLOSED, None, "store") is False
    assert breaker.window.totals().requests == 0


def test_apply_state_future_opened_at_is_taken_as_now() -> None:
    breaker, clock, _ = make()
    breaker.apply_state(OPEN, clock.now + 500, "store")
    assert breaker.opened_at == clock.now


def test_apply_state_held_and_by_value() -> None:
    breaker, clock, recorder = make()
    assert breaker.apply_state("open", None, "store: rollback", held=True) is True  # type: ignore[arg-type]
    assert breaker.state is OPEN and breaker.held
    clock.now += 3600
    assert breaker.admit() is Admission.REJECT
    assert breaker.apply_state(OPEN, None, "store", held=True) is False
    assert recorder.trips == []
    with pytest.raises(ValueError):
        breaker.apply_state("ajar", None, "store")  # type: ignore[arg-type]


def test_apply_state_half_open_hands_out_probes() -> None:
    breaker, _, recorder = make(BreakerPolicy(probes=2))
    assert breaker.apply_state(HALF_OPEN, None, "store") is True
    assert [breaker.admit() for _ in range(3)] == [Admission.PROBE, Admission.PROBE, Admission.REJECT]
    assert recorder.states == [(CLOSED, HALF_OPEN)]


# -- status surface -------------------------------------------------------


def test_snapshot() -> None:
    stable = SlidingWindow(clock=Clock())
    fill(stable, 10, 1)
    breaker, clock, _ = make(BreakerPolicy(relative_margin=0.2, probes=2), baseline=stable)
    send(breaker, 3)
    send(breaker, 1, error=True, slow=True)
    snapshot = breaker.snapshot()
    assert snapshot == {
        "route": "canary",
        "state": "closed",
        "opened_at": None,
        "held": False,
        "retry_after": 0.0,
        "totals": {"requests": 4, "errors": 1, "slow": 1},
        "error_rate": 0.25,
        "slow_rate": 0.25,
        "probes": None,
        "baseline": {"requests": 10, "errors": 1, "slow": 0, "error_rate": 0.1, "slow_rate": 0.0},
    }
    json.dumps(snapshot)
    breaker.trip()
    clock.now += 5
    assert breaker.snapshot()["state"] == "open"
    assert breaker.snapshot()["opened_at"] == clock.now - 5
    breaker.apply_state(HALF_OPEN, None, "store")
    breaker.admit()
    assert breaker.snapshot()["probes"] == {"allowed": 2, "issued": 1, "reported": 0}


# -- configuration --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"route": ""}, "route must be a non-empty string", id="empty route"),
        pytest.param({"policy": {"error_rate": 0.5}}, "policy must be a BreakerPolicy", id="dict policy"),
        pytest.param(
            {"policy": BreakerPolicy(relative_margin=0.1)}, "needs a baseline window", id="relative without baseline"
        ),
        pytest.param({"baseline": [1, 2]}, "baseline must be a SlidingWindow", id="baseline not a window"),
        pytest.param({"listeners": [print]}, "BreakerListener", id="listener not a BreakerListener"),
    ],
)
def test_bad_breaker_options(kwargs: dict[str, t.Any], message: str) -> None:
    options: dict[str, t.Any] = {"route": "canary", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        RouteBreaker(**options)


def test_window_follows_the_policy() -> None:
    breaker = RouteBreaker("canary", BreakerPolicy(window_buckets=10))
    assert breaker.window.buckets == 10 and breaker.window.bucket_seconds == 1.0
    assert breaker.state is CLOSED and breaker.opened_at is None
    assert repr(breaker) == "RouteBreaker('canary', state=closed)"
