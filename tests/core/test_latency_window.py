"""LatencyWindow: the mean response time over a sliding window.

The window keeps its newest bucket's sums in two fields and folds them into
the ring when time moves on; these tests check every way time can move
(within a bucket, to the next, across several, past the whole ring,
backwards) against a plain model that keeps every response with its
bucket number.
"""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from graywsgi.core.window import LatencyWindow


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Model:
    """Every response with the bucket it landed in; the mean over the newest ``buckets`` buckets."""

    def __init__(self, buckets: int, start: int) -> None:
        self.buckets = buckets
        self.newest = start
        self.kept: list[tuple[int, float]] = []

    def record(self, bucket: int, seconds: float) -> None:
        self.newest = max(self.newest, bucket)  # a clock that went back counts in the newest bucket
        self.kept.append((self.newest, seconds))

    def mean(self, bucket: int) -> float | None:
        self.newest = max(self.newest, bucket)
        inside = [seconds for landed, seconds in self.kept if landed > self.newest - self.buckets]
        return sum(inside) / len(inside) if inside else None


def test_mean_of_the_newest_bucket_and_older_ones() -> None:
    clock = Clock(0.5)
    window = LatencyWindow(buckets=3, clock=clock)
    assert window.mean() is None
    window.record(0.25)
    window.record(0.75)
    assert window.mean() == pytest.approx(0.5)  # both still in the newest bucket's fields
    clock.now = 1.5
    window.record(2.0)
    assert window.mean() == pytest.approx(1.0)  # bucket 0 is in the ring now, bucket 1 newest
    clock.now = 3.0  # bucket 0 leaves the window
    assert window.mean() == pytest.approx(2.0)
    clock.now = 4.0  # bucket 1 leaves too
    assert window.mean() is None


def test_the_newest_bucket_leaves_with_a_jump_past_the_ring() -> None:
    clock = Clock(10.2)
    window = LatencyWindow(buckets=4, clock=clock)
    window.record(1.0)
    clock.now = 1e9  # the whole ring is stale, the newest bucket's fields with it
    assert window.mean() is None
    window.record(3.0)
    assert window.mean() == pytest.approx(3.0)


def test_a_clock_that_goes_back_counts_in_the_newest_bucket() -> None:
    clock = Clock(5.5)
    window = LatencyWindow(buckets=3, clock=clock)
    window.record(1.0)
    clock.now = 2.0
    window.record(3.0)
    assert window.mean() == pytest.approx(2.0)
    clock.now = 7.9  # buckets 5, 6, 7: both are in bucket 5
    assert window.mean() == pytest.approx(2.0)
    clock.now = 8.0
    assert window.mean() is None


@pytest.mark.parametrize("seed", range(20))
def test_random_steps_match_the_model(seed: int) -> None:
    chance = random.Random(seed)
    buckets = chance.choice([1, 2, 3, 5, 60])
    bucket_seconds = chance.choice([1.0, 0.25, 2.5])
    clock = Clock(chance.uniform(0, 100))
    window = LatencyWindow(buckets=buckets, bucket_seconds=bucket_seconds, clock=clock)
    model = Model(buckets, int(clock.now / bucket_seconds))
    for _ in range(400):
        step = chance.random()
        if step < 0.1:
            clock.now += chance.choice([bucket_seconds, buckets * bucket_seconds, 0.3, 7.0])
        elif step < 0.13:
            clock.now -= chance.uniform(0, 3 * bucket_seconds)
        bucket = int(clock.now / bucket_seconds)
        if step < 0.8:
            seconds = chance.choice([0.001, 0.25, 1.0, 12.5])
            window.record(seconds)
            model.record(bucket, seconds)
        else:
            expected = model.mean(bucket)
            found = window.mean()
            if expected is None:
                assert found is None
            else:
                assert found == pytest.approx(expected)


def test_exact_sums_under_16_threads(busy_switching: None) -> None:
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) * 1e-4  # crosses bucket boundaries during the run

    window = LatencyWindow(buckets=600, clock=clock)  # long enough to keep every response
    per_thread = 1000
    barrier = threading.Barrier(16)

    def hammer() -> None:
        barrier.wait()
        for n in range(per_thread):
            window.record(0.5 if n % 2 else 1.5)
            if n % 100 == 0:
                window.mean()  # the fold from another path, concurrently

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert clock() > 1.0  # the run did span several buckets
    count = sum(window._counts) + window._newest_count
    assert count == 16 * per_thread
    assert window.mean() == pytest.approx(1.0)
