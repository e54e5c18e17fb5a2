from __future__ import annotations

import itertools
import threading
import time
import typing as t

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.core.window import SlidingWindow, WindowTotals


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record_at(window: SlidingWindow, clock: Clock, when: float, *, error: bool = False, slow: bool = False) -> None:
    clock.now = when
    window.record(error=error, slow=slow)


def run_threads(count: int, target: t.Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)

    def start(index: int) -> None:
        barrier.wait()
        target(index)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


# -- totals ---------------------------------------------------------------


@pytest.mark.parametrize(
    "totals, error_rate, slow_rate",
    [
        pytest.param(WindowTotals(0, 0, 0), 0.0, 0.0, id="empty window has rates 0"),
        pytest.param(WindowTotals(4, 1, 2), 0.25, 0.5, id="quarter errors, half slow"),
        pytest.param(WindowTotals(20, 7, 0), 0.35, 0.0, id="7 of 20 is exactly 0.35"),
        pytest.param(WindowTotals(3, 3, 3), 1.0, 1.0, id="all failed"),
    ],
)
def test_rates(totals: WindowTotals, error_rate: float, slow_rate: float) -> None:
    assert totals.error_rate == error_rate
    assert totals.slow_rate == slow_rate


def test_counts_requests_errors_and_slow_calls() -> None:
    clock = Clock(100.0)
    window = SlidingWindow(clock=clock)
    for error, slow in [(False, False), (True, False), (False, True), (True, True)]:
        window.record(error=error, slow=slow)
    assert window.totals() == WindowTotals(requests=4, errors=2, slow=2)


# -- time -----------------------------------------------------------------


def test_buckets_expire_across_second_boundaries() -> None:
    clock = Clock()
    window = SlidingWindow(buckets=3, bucket_seconds=1.0, clock=clock)
    record_at(window, clock, 0.2, error=True)  # bucket 0
    record_at(window, clock, 0.999, error=True)  # bucket 0
    record_at(window, clock, 1.0)  # bucket 1
    record_at(window, clock, 2.5, slow=True)  # bucket 2
    expected = [
        (2.999, WindowTotals(4, 2, 1)),  # buckets 0, 1, 2
        (3.0, WindowTotals(2, 0, 1)),  # bucket 0 left
        (3.5, WindowTotals(2, 0, 1)),
        (4.0, WindowTotals(1, 0, 1)),  # bucket 1 left
        (5.0, WindowTotals(0, 0, 0)),  # bucket 2 left
    ]
    for now, totals in expected:
        clock.now = now
        assert window.totals() == totals, now


def test_expired_slot_is_reused_without_old_counts() -> None:
    clock = Clock()
    window = SlidingWindow(buckets=2, clock=clock)
    record_at(window, clock, 0.5, error=True)  # slot 0
    record_at(window, clock, 2.5)  # bucket 2, slot 0 again: the error is gone
    assert window.totals() == WindowTotals(1, 0, 0)
    record_at(window, clock, 3.5, slow=True)
    assert window.totals() == WindowTotals(2, 0, 1)


def test_fractional_bucket_seconds() -> None:
    clock = Clock()
    window = SlidingWindow(buckets=4, bucket_seconds=0.25, clock=clock)
    record_at(window, clock, 0.0)
    record_at(window, clock, 0.74)
    clock.now = 0.99
    assert window.totals().requests == 2
    clock.now = 1.0  # bucket 4: bucket 0 left
    assert window.totals().requests == 1


@pytest.mark.parametrize(
    "jump, remaining",
    [
        pytest.param(0, 3, id="no time passed"),
        pytest.param(1, 2, id="one bucket later: bucket 0 of 3 left"),
        pytest.param(2, 1, id="two buckets later"),
        pytest.param(3, 0, id="exactly a window later"),
        pytest.param(4, 0, id="more than a window later"),
        pytest.param(10**12, 0, id="a trillion buckets later"),
    ],
)
def test_clock_jumps(jump: int, remaining: int) -> None:
    clock = Clock()
    window = SlidingWindow(buckets=3, clock=clock)
    for second in range(3):
        record_at(window, clock, second + 0.5, error=True)
    clock.now = 2.5 + jump
    assert window.totals() == WindowTotals(remaining, remaining, 0)
    window.record(error=False, slow=False)
    assert window.totals() == WindowTotals(remaining + 1, remaining, 0)


def test_big_jump_touches_no_bucket_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    window = SlidingWindow(buckets=60, clock=clock)
    record_at(window, clock, 1.0)
    touched: list[int] = []

    class Watched(list[int]):
        def __getitem__(self, index: t.Any) -> t.Any:
            touched.append(index)
            return super().__getitem__(index)

    monkeypatch.setattr(window, "_requests", Watched(window._requests))
    clock.now = 1e9
    assert window.totals().requests == 0
    assert touched == []  # everything was stale: zeroed at once, no loop


def test_backwards_clock_counts_in_the_newest_bucket() -> None:
    clock = Clock()
    window = SlidingWindow(buckets=3, clock=clock)
    record_at(window, clock, 5.5, error=True)
    record_at(window, clock, 2.0, error=True)  # the clock went back 3.5 s
    record_at(window, clock, -100.0)
    assert window.totals() == WindowTotals(3, 2, 0)
    clock.now = 7.9  # buckets 5, 6, 7: all three are still in bucket 5
    assert window.totals() == WindowTotals(3, 2, 0)
    clock.now = 8.0
    assert window.totals() == WindowTotals(0, 0, 0)  # gone together, never negative
    record_at(window, clock, 8.5)
    assert window.totals() == WindowTotals(1, 0, 0)


def test_reset() -> None:
    clock = Clock()
    window = SlidingWindow(buckets=3, clock=clock)
    record_at(window, clock, 0.5, error=True, slow=True)
    record_at(window, clock, 1.5, error=True)
    window.reset()
    assert window.totals() == WindowTotals(0, 0, 0)
    record_at(window, clock, 2.5)
    clock.now = 3.5  # bucket 0 expires: nothing may be subtracted twice
    assert window.totals() == WindowTotals(1, 0, 0)


def test_real_monotonic_clock_by_default() -> None:
    window = SlidingWindow()
    window.record(error=True, slow=False)
    assert window.totals() == WindowTotals(1, 1, 0)
    assert window._clock is time.monotonic


# -- threads --------------------------------------------------------------


def test_exact_counts_under_16_threads(busy_switching: None) -> None:
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) * 1e-4  # ~3.2 s over the run: crosses bucket boundaries

    window = SlidingWindow(buckets=60, clock=clock)
    per_thread = 2000

    def hammer(index: int) -> None:
        for n in range(per_thread):
            window.record(error=n % 2 == 0, slow=n % 5 == 0)
            if n % 100 == 0:
                window.totals()  # expiry from another path, concurrently

    run_threads(16, hammer)
    sent = 16 * per_thread
    assert window.totals() == WindowTotals(requests=sent, errors=sent // 2, slow=sent // 5)
    assert sum(window._requests) == sent
    assert clock() > 3.0  # the run did span several buckets


class SwitchingList(list[int]):
    """A list whose reads sleep, so that ``slot[i] += 1`` is interrupted
    between its read and its write by every other thread."""

    def __getitem__(self, index: t.Any) -> t.Any:
        value = super().__getitem__(index)
        time.sleep(0.0005)
        return value


def forced_race(window: SlidingWindow, threads: int = 8, per_thread: int = 20) -> int:
    window._requests = SwitchingList(window._requests)

    def hammer(index: int) -> None:
        for _ in range(per_thread):
            window.record(error=False, slow=False)

    run_threads(threads, hammer)
    return threads * per_thread


def test_forced_race_loses_nothing_with_the_lock() -> None:
    window = SlidingWindow(clock=Clock())
    sent = forced_race(window)
    assert sum(window._requests) == sent
    assert window.totals().requests == sent


def test_forced_race_would_lose_updates_without_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: the same race with the lock removed loses updates, so the
    # test above proves the lock and not the luck of the scheduler.
    class NoLock:
        def acquire(self) -> bool:
            return True

        def release(self) -> None:
            pass

        def __enter__(self) -> bool:
            return True

        def __exit__(self, *exc: object) -> None:
            pass

    window = SlidingWindow(clock=Clock())
    monkeypatch.setattr(window, "_lock", NoLock())
    sent = forced_race(window)
    assert sum(window._requests) < sent


# -- configuration --------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"buckets": 0}, "buckets must be >= 1", id="zero buckets"),
        pytest.param({"buckets": -5}, "buckets must be >= 1", id="negative buckets"),
        pytest.param({"buckets": 2.5}, "buckets must be an int", id="float buckets"),
        pytest.param({"buckets": True}, "buckets must be an int", id="bool buckets"),
        pytest.param({"buckets": "60"}, "buckets must be an int", id="string buckets"),
        pytest.param({"bucket_seconds": 0}, "bucket_seconds", id="zero bucket_seconds"),
        pytest.param({"bucket_seconds": -1.0}, "bucket_seconds", id="negative bucket_seconds"),
        pytest.param({"bucket_seconds": float("nan")}, "bucket_seconds", id="nan bucket_seconds"),
        pytest.param({"bucket_seconds": float("inf")}, "bucket_seconds", id="infinite bucket_seconds"),
        pytest.param({"bucket_seconds": "1"}, "bucket_seconds", id="string bucket_seconds"),
        pytest.param({"bucket_seconds": True}, "bucket_seconds", id="bool bucket_seconds"),
        pytest.param({"clock": 1.0}, "clock must be callable", id="clock not callable"),
    ],
)
def test_bad_options(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SlidingWindow(**options)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"buckets": 1}, id="one bucket"),
        pytest.param({"bucket_seconds": 1}, id="int bucket_seconds"),
        pytest.param({"buckets": 10, "bucket_seconds": 0.1}, id="hystrix-like 1 s of 100 ms buckets"),
    ],
)
def test_good_options(options: dict[str, t.Any]) -> None:
    window = SlidingWindow(**options, clock=Clock())
    window.record(error=True, slow=True)
    assert window.totals() == WindowTotals(1, 1, 1)
