"""Hot-path caches: policy values kept beside the policy, _count_to_judge vs.
a subclass's _count, Guard's last-route cache, the compiled ExtractionBreaker."""

from __future__ import annotations

import threading
import typing as t

import pytest

from graywsgi.core.breaker import Admission, BreakerPolicy, RouteBreaker
from graywsgi.core.context import DegradeLevel
from graywsgi.core.window import SlidingWindow, WindowTotals
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.extraction_breaker import Admission as ExtractionAdmission
from graywsgi.layers.extraction_breaker import BreakerState, ExtractionBreaker
from graywsgi.layers.guard import Guard
from tests.conftest import RecordingApp
from tests.core.conftest import CLOSED, OPEN, Clock, Recorder
from tests.layers.conftest import run


class CountingWindow(SlidingWindow):
    """A subclass that counts elsewhere: the breaker must go through _count."""

    count_calls = 0

    def _count(self, error: bool, slow: bool) -> tuple[int, int, int]:
        self.count_calls += 1
        return super()._count(error, slow)


WINDOW_KINDS = ["plain", "guarded", "subclass"]


def make_breaker(policy: BreakerPolicy, kind: str) -> tuple[RouteBreaker, Clock, Recorder]:
    """A breaker on a plain window, one with a test lock (the other branch
    of _count_to_judge), or a CountingWindow."""
    clock, recorder = Clock(), Recorder()
    window: SlidingWindow | None = None
    if kind == "subclass":
        window = CountingWindow(policy.window_buckets, 1.0, clock)
    breaker = RouteBreaker("canary", policy, clock=clock, listeners=[recorder], window=window)
    if kind == "guarded":
        breaker.window._lock = threading.Lock()
    return breaker, clock, recorder


def send(breaker: RouteBreaker, outcomes: t.Iterable[str]) -> None:
    """One admitted request per letter: E error, S slow, . success."""
    for outcome in outcomes:
        breaker.record(breaker.admit(), error=outcome == "E", slow=outcome == "S")


def check_count_calls(breaker: RouteBreaker, records: int) -> None:
    """A CountingWindow saw every record through _count."""
    if isinstance(breaker.window, CountingWindow):
        assert breaker.window.count_calls == records


# --- RouteBreaker: policy reassignment and the trip rule ---------------------


def test_route_breaker_new_policy_applies_to_next_record() -> None:
    """A lower min_requests set after 3 errors trips on the 4th; a higher
    one defers the trip."""
    breaker, _, recorder = make_breaker(BreakerPolicy(min_requests=10, error_rate=0.5), "plain")
    send(breaker, "EEE")
    assert breaker.state is CLOSED
    lower = BreakerPolicy(min_requests=4, error_rate=0.5)
    breaker.policy = lower
    assert breaker.policy is lower and breaker._min_requests == 4
    send(breaker, "E")
    assert breaker.state is OPEN
    assert [totals for _, totals, _ in recorder.trips] == [WindowTotals(4, 4, 0)]

    breaker, _, _ = make_breaker(BreakerPolicy(min_requests=4, error_rate=0.5), "plain")
    breaker.policy = BreakerPolicy(min_requests=8, error_rate=0.5)
    send(breaker, "EEEEEEE")
    assert breaker.state is CLOSED  # 7 < 8: the old threshold of 4 no longer counts
    send(breaker, "E")
    assert breaker.state is OPEN


@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_trips_only_once_min_requests_reached(kind: str) -> None:
    """All errors: closed at min_requests - 1, open at min_requests, with
    the totals of the window in the trip alert."""
    breaker, _, recorder = make_breaker(BreakerPolicy(min_requests=5, error_rate=0.5), kind)
    send(breaker, "EEEE")
    assert breaker.state is CLOSED and recorder.trips == []
    send(breaker, "E")
    assert breaker.state is OPEN
    assert [totals for _, totals, _ in recorder.trips] == [WindowTotals(5, 5, 0)]
    check_count_calls(breaker, 5)


@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_rate_must_be_above_threshold_and_a_success_can_trip(kind: str) -> None:
    """2 of 4 (= 50 %) does not trip; 3 of 5 does. With earlier errors in
    the window, the success that reaches min_requests is judged and trips."""
    breaker, _, _ = make_breaker(BreakerPolicy(min_requests=4, error_rate=0.5), kind)
    send(breaker, "EE..")
    assert breaker.state is CLOSED
    send(breaker, "E")
    assert breaker.state is OPEN
    check_count_calls(breaker, 5)

    breaker, _, recorder = make_breaker(BreakerPolicy(min_requests=4, error_rate=0.3), kind)
    send(breaker, "EE.")
    assert breaker.state is CLOSED
    send(breaker, ".")  # a success: 2 errors of 4 = 50 % > 30 %
    assert breaker.state is OPEN
    assert [totals for _, totals, _ in recorder.trips] == [WindowTotals(4, 2, 0)]
    check_count_calls(breaker, 4)


@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_slow_calls_alone_trip_with_slow_rate(kind: str) -> None:
    """No error, but slow calls above slow_rate: slow calls alone are judged."""
    breaker, _, recorder = make_breaker(BreakerPolicy(min_requests=4, slow_rate=0.5), kind)
    send(breaker, "S.S")
    assert breaker.state is CLOSED
    send(breaker, "S")
    assert breaker.state is OPEN
    assert [totals for _, totals, _ in recorder.trips] == [WindowTotals(4, 0, 3)]
    check_count_calls(breaker, 4)


@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_only_successes_never_trip(kind: str) -> None:
    """Hundreds of successes past min_requests: closed, every one counted."""
    breaker, clock, recorder = make_breaker(BreakerPolicy(min_requests=5, error_rate=0.1), kind)
    for _ in range(3):
        send(breaker, "." * 100)
        clock.now += 0.5
    assert breaker.state is CLOSED and recorder.trips == []
    assert breaker.window.totals() == WindowTotals(300, 0, 0)
    check_count_calls(breaker, 300)


# --- Guard: policy reassignment and the last-route cache ----------------------


def test_guard_new_policy_slow_threshold_applies_to_next_outcome() -> None:
    """A call of 0.5 s is not slow under slow_call_seconds=1.0, and is slow,
    for the canary and for the baseline, once the policy says 0.25."""
    clock = Clock()
    guard = Guard(policy=BreakerPolicy(slow_call_seconds=1.0), clock=clock)

    def call(route: str, admission: Admission | None) -> None:
        started = clock.now
        clock.now += 0.5
        guard.outcome(route, admission, started, 200, False)

    call("canary", guard.admit("canary")[0])
    call("stable", None)
    assert guard.breaker("canary").window.totals() == WindowTotals(1, 0, 0)
    assert guard.baseline.totals() == WindowTotals(1, 0, 0)
    faster = BreakerPolicy(slow_call_seconds=0.25)
    guard.policy = faster
    assert guard.policy is faster
    call("canary", guard.admit("canary")[0])
    call("stable", None)
    assert guard.breaker("canary").window.totals() == WindowTotals(2, 0, 1)
    assert guard.baseline.totals() == WindowTotals(2, 0, 1)


def test_guard_alternating_routes_keep_their_own_windows() -> None:
    """Two canary routes, alternating and interleaved, also named by equal
    but distinct string objects: every outcome lands in its own route's
    breaker and latency windows."""
    clock = Clock()
    guard = Guard(clock=clock)  # min_requests=20: nothing trips here
    a, b = "canary-a", "canary-b"
    a_copy, b_copy = "".join(list(a)), "".join(list(b))
    assert a_copy == a and a_copy is not a and b_copy == b and b_copy is not b
    took = {a: 0.25, b: 1.5}
    status = {a: 500, b: 200}

    def outcome(route: str, name: str, admission: Admission) -> None:
        started = clock.now
        clock.now += took[name]
        guard.outcome(route, admission, started, status[name], False)

    for _ in range(3):  # admit and outcome one after the other, by both names
        for route, name in ((a, a), (b, b), (a_copy, a), (b_copy, b)):
            admission, reason = guard.admit(route)
            assert (admission, reason) == (Admission.PASS, "")
            outcome(route, name, admission)
    for _ in range(2):  # admissions interleaved: the cache holds the other route
        adm_a, _ = guard.admit(a)
        adm_b, _ = guard.admit(b_copy)
        outcome(a_copy, a, adm_a)
        outcome(b, b, adm_b)

    assert set(guard._breakers) == {a, b}
    assert guard.breaker(a) is guard.breaker(a_copy) is not guard.breaker(b)
    assert guard.breaker(a).window.totals() == WindowTotals(8, 8, 0)
    assert guard.breaker(b_copy).window.totals() == WindowTotals(8, 0, 8)  # 1.5 s > 1.0 s: slow
    assert guard.latency(a) == pytest.approx(0.25)
    assert guard.latency(b_copy) == pytest.approx(1.5)
    assert guard.baseline.totals() == WindowTotals(0, 0, 0)


# --- Extraction and the compiled ExtractionBreaker ----------------------------


def test_extraction_accepts_only_an_extraction_breaker(recording_app: RecordingApp) -> None:
    """Anything else is refused, naming ``breaker``, at construction and on
    assignment; a real ExtractionBreaker is used as given."""
    with pytest.raises(ConfigurationError, match="breaker"):
        Extraction(recording_app, breaker=object())  # type: ignore[arg-type]
    extraction = Extraction(recording_app, breaker=(breaker := ExtractionBreaker()))
    assert extraction.breaker is breaker
    with pytest.raises(ConfigurationError, match="breaker"):
        extraction.breaker = object()  # type: ignore[assignment]
    assert extraction.breaker is breaker
    assert run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="user-1").gray_id == "user-1"


def test_open_extraction_breaker_degrades_to_l3(recording_app: RecordingApp) -> None:
    """Failing resolvers open the breaker; then nothing is parsed (L3) until
    the cooldown's probe succeeds."""
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=2, open_for=30, clock=clock)
    calls: list[bool] = []

    def resolver(environ: t.Any) -> None:
        calls.append(True)
        if environ.get("HTTP_X_BREAK"):
            raise RuntimeError("resolver down")

    extraction = Extraction(recording_app, resolvers=[resolver], breaker=breaker)
    for _ in range(2):
        run(recording_app, wrapper=extraction, HTTP_X_BREAK="1", HTTP_X_GRAY_ID="user-1")
    opened = breaker.state  # (a local: mypy would narrow breaker.state for good)
    assert opened is BreakerState.OPEN and len(calls) == 2
    context = run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="user-1")
    assert context.degrade_level is DegradeLevel.L3 and context.is_fallback and context.gray_id is None
    assert len(calls) == 2  # the resolver was not called
    clock.now += 30
    context = run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="user-1")  # the probe
    assert breaker.state is BreakerState.CLOSED and breaker._consecutive_failures == 0
    assert context.degrade_level is DegradeLevel.NONE and context.gray_id == "user-1"


def test_extraction_breaker_fields_set_by_tests_drive_requests(recording_app: RecordingApp) -> None:
    """Without resolvers: ``_state`` set to OPEN leaves the closed fast path
    (L3); a pending ``_consecutive_failures`` is reset by a good request."""
    clock = Clock()
    breaker = ExtractionBreaker(failure_threshold=3, open_for=30, clock=clock)
    extraction = Extraction(recording_app, breaker=breaker)
    assert run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="u").degrade_level is DegradeLevel.NONE
    breaker._state = BreakerState.OPEN
    breaker._opened_at = clock.now
    assert breaker.admit() is ExtractionAdmission.REJECT
    context = run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="u")
    assert context.degrade_level is DegradeLevel.L3 and context.gray_id is None
    breaker._state = BreakerState.CLOSED
    breaker._consecutive_failures = 2
    context = run(recording_app, wrapper=extraction, HTTP_X_GRAY_ID="u")
    assert context.degrade_level is DegradeLevel.NONE and context.gray_id == "u"
    assert breaker._consecutive_failures == 0 and breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("method", ["admit", "retry_after", "breaker"])
def test_guard_refuses_a_route_that_is_not_a_name_before_any_lookup(method: str) -> None:
    """The Guard's memory of the last route starts empty: a ``None`` route
    is refused with ConfigurationError, as before the memory existed
    (compiled, a match there would have handed back no breaker at all)."""
    guard = Guard(clock=Clock())
    with pytest.raises(ConfigurationError, match="route must be a non-empty string"):
        getattr(guard, method)(None)


def test_a_minimum_no_window_can_reach_is_accepted_and_never_trips() -> None:
    """``min_requests`` and ``failure_threshold`` as large as Python ints go:
    accepted on both paths (compiled, kept in C fields), and such a breaker
    never trips however many requests fail."""
    breaker = RouteBreaker("canary", BreakerPolicy(min_requests=10**30, error_rate=0.1), clock=Clock())
    for _ in range(50):
        breaker.record(breaker.admit(), error=True, slow=False)
    assert breaker.state is CLOSED
    assert breaker.policy.min_requests == 10**30
    extraction_breaker = ExtractionBreaker(failure_threshold=10**30)
    for _ in range(5):
        extraction_breaker.record(extraction_breaker.admit(), failed=True, duration=0.0)
    assert extraction_breaker.state is BreakerState.CLOSED
    assert extraction_breaker.failure_threshold == 10**30
