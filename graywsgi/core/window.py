"""
Sliding window
==============

Counts of requests, errors and slow calls over the last minute (by
default), for one route. The route breaker (:mod:`graywsgi.core.breaker`) decides
from these counts whether a canary is failing; a gate can compare a canary's
window with stable's.

.. code-block:: python

    from graywsgi.core.window import SlidingWindow

    window = SlidingWindow()                  # 60 buckets of 1 s
    window.record(error=status >= 500, slow=duration > 1.0)
    window.totals().error_rate                # errors / requests, last minute

Theory of operation
-------------------

Time is cut into buckets of ``bucket_seconds``. Bucket number ``n`` holds
every outcome recorded while ``int(clock() / bucket_seconds) == n``. The
window keeps the newest ``buckets`` buckets in a ring (bucket ``n`` lives in
slot ``n % buckets``) and running totals over the whole ring::

    record()   add 1 to the newest bucket and to the running totals   O(1)
    totals()   return the running totals                              O(1)

Buckets expire lazily. When a call finds that time has moved on to bucket
``m`` while the newest bucket so far is ``n < m``, the slots of buckets
``n+1 .. m`` still hold counts from a lap ago: each one is subtracted from
the totals and zeroed. If ``m - n >= buckets`` the whole ring is stale and is
zeroed at once. So a call touches at most ``buckets`` slots however long the
pause was -- never a loop over the elapsed time -- and, since each slot is
cleared once per lap, the cost is O(1) amortised.

The window covers the newest, partial bucket and the ``buckets - 1`` full
ones before it: between ``(buckets - 1) * bucket_seconds`` and
``buckets * bucket_seconds`` seconds of history.

The clock must be monotonic (``time.monotonic``, the default), so a
wall-clock change (an NTP step, an operator's ``date -s``) moves nothing. A
clock that goes backwards anyway is treated as if no time had passed: the
outcome goes into the newest bucket. Nothing is lost and nothing is
subtracted twice; the window just ages a little late.

Concurrency: the clock is read before the lock is taken, and the lock guards
the counters only -- a few integer additions. Compiled (:mod:`graywsgi.speedups`),
the lock is Cython's ``pymutex`` inside the window object, taken without a
Python call (a ``PyThread`` lock on Python 3.11 and 3.12, ``PyMutex`` from
3.13); as plain Python it is a :class:`threading.Lock`. Either way a thread
that has to wait for it lets the others run. Two threads that read the
clock in one order and take the lock in the other are fine: the later one
finds its bucket older than the newest and counts into the newest.

The same window in Resilience4j and Hystrix
-------------------------------------------

This is Resilience4j's ``TIME_BASED`` sliding window: an array of partial
aggregations, one per epoch second, and a total aggregation from which the
bucket that leaves the window is subtracted. Hystrix's rolling window
(``HystrixRollingNumber``) is the same ring with a configurable bucket
length.

==============================  ===============================  ==========================================
graywsgi                        Resilience4j (``TIME_BASED``)    Hystrix
==============================  ===============================  ==========================================
``buckets``                     ``slidingWindowSize``            ``metrics.rollingStats.numBuckets``
``bucket_seconds``              always 1 s                       ``metrics.rollingStats.timeInMilliseconds`` / ``numBuckets`` / 1000
``buckets * bucket_seconds``    ``slidingWindowSize`` seconds    ``metrics.rollingStats.timeInMilliseconds`` / 1000
==============================  ===============================  ==========================================

So ``SlidingWindow(buckets=60)`` is Resilience4j's
``slidingWindowSize=60``, and Hystrix's defaults (10 000 ms, 10 buckets) are
``SlidingWindow(buckets=10, bucket_seconds=1.0)``. Unlike Hystrix, which
reads its counts from a health snapshot taken every
``metrics.healthSnapshot.intervalInMilliseconds``, :meth:`SlidingWindow.totals`
is always current.
"""

from __future__ import annotations

import math
import threading
import time
import typing as t

from graywsgi.errors import ConfigurationError

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)

_MONOTONIC = time.monotonic

__all__ = ["LatencyWindow", "SlidingWindow", "WindowTotals", "MAX_BUCKETS"]

#: The most buckets a window may have (115 days of 1 s buckets).
MAX_BUCKETS = 10_000_000


class WindowTotals(t.NamedTuple):
    """What a window holds: counts of requests, errors and slow calls."""

    requests: int
    errors: int
    slow: int

    @property
    def error_rate(self) -> float:
        """``errors / requests``, between 0.0 and 1.0; 0.0 when empty."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def slow_rate(self) -> float:
        """``slow / requests``, between 0.0 and 1.0; 0.0 when empty."""
        return self.slow / self.requests if self.requests else 0.0


class SlidingWindow:
    """Time-based sliding window of request outcomes, safe to share between
    threads.

    >>> now = [0.0]
    >>> window = SlidingWindow(buckets=10, clock=lambda: now[0])
    >>> window.record(error=True, slow=False)
    >>> window.record(error=False, slow=True)
    >>> window.totals()
    WindowTotals(requests=2, errors=1, slow=1)
    >>> window.totals().error_rate
    0.5
    >>> now[0] = 10.0  # ten buckets later, bucket 0 has left the window
    >>> window.totals()
    WindowTotals(requests=0, errors=0, slow=0)

    :param buckets: how many buckets the window holds (default 60).
    :param bucket_seconds: the length of a bucket in seconds (default 1.0).
    :param clock: a monotonic clock in seconds (injectable for tests).
    :raises ConfigurationError: if ``buckets`` is not an int from 1 to
        :data:`MAX_BUCKETS`, ``bucket_seconds`` not a finite number > 0, or
        ``clock`` not callable.
    """

    def __init__(
        self,
        buckets: int = 60,
        bucket_seconds: float = 1.0,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(buckets, bool) or not isinstance(buckets, int):
            raise ConfigurationError(f"buckets must be an int, got {buckets!r}")
        if buckets < 1:
            raise ConfigurationError(f"buckets must be >= 1, got {buckets}")
        if buckets > MAX_BUCKETS:
            raise ConfigurationError(f"buckets must be at most {MAX_BUCKETS:,}, got {buckets:,}")
        if (
            isinstance(bucket_seconds, bool)
            or not isinstance(bucket_seconds, (int, float))
            or not math.isfinite(bucket_seconds)
            or bucket_seconds <= 0
        ):
            raise ConfigurationError(f"bucket_seconds must be a finite number > 0, got {bucket_seconds!r}")
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, got {clock!r}")
        self.buckets = buckets
        self.bucket_seconds = float(bucket_seconds)
        self._clock = clock
        if not cython.compiled:  # compiled, the mutex is a field of the object (window.pxd)
            self._mutex = threading.Lock()
        self._guard = None
        self._requests = [0] * buckets
        self._errors = [0] * buckets
        self._slow = [0] * buckets
        self._total_requests = 0
        self._total_errors = 0
        self._total_slow = 0
        self._newest = self._bucket_now()
        self._slot = self._newest % buckets

    def __repr__(self) -> str:
        return f"SlidingWindow(buckets={self.buckets}, bucket_seconds={self.bucket_seconds})"

    @property
    def _lock(self) -> t.Any:
        """A lock a test put in place of the window's own (``None``: the own one)."""
        return self._guard

    @_lock.setter
    def _lock(self, lock: t.Any) -> None:
        self._guard = lock

    def record(self, *, error: bool, slow: bool) -> None:
        """Count one request.

        :param error: whether it failed (a 5xx or an exception).
        :param slow: whether it was a slow call.
        """
        self._count(error, slow)

    def _count(self, error: bool, slow: bool) -> tuple[int, int, int]:
        """:meth:`record`, returning the totals it leaves as ``(requests,
        errors, slow)``: the breaker's hot path, one lock round instead of
        two."""
        bucket = self._bucket_now()
        if self._guard is None:
            with self._mutex:
                return self._add(bucket, error, slow)
        with self._guard:
            return self._add(bucket, error, slow)

    def _count_to_judge(self, error: bool, slow: bool, min_requests: int) -> tuple[int, int, int] | None:
        """:meth:`_count`, returning the totals only when a breaker has to
        judge them: at least ``min_requests`` requests, and an error or a
        slow call among them; ``None`` otherwise (the usual case: this
        window then builds no tuple). A subclass's :meth:`_count` is used
        as it is (a fleet-wide window counts elsewhere)."""
        if type(self) is SlidingWindow and self._guard is None:
            bucket = self._bucket_now()
            with self._mutex:
                self._add_one(bucket, error, slow)
                requests, errors, slow_calls = self._total_requests, self._total_errors, self._total_slow
        else:
            requests, errors, slow_calls = self._count(error, slow)
        if requests < min_requests or not (errors or slow_calls):
            return None
        return requests, errors, slow_calls

    def _add(self, bucket: int, error: bool, slow: bool) -> tuple[int, int, int]:
        """Count one request in ``bucket`` (lock held); the totals it leaves."""
        self._add_one(bucket, error, slow)
        return self._total_requests, self._total_errors, self._total_slow

    def _add_one(self, bucket: int, error: bool, slow: bool) -> None:
        """Count one request in ``bucket`` (lock held)."""
        if bucket > self._newest:
            self._expire(bucket)
        slot = self._slot
        self._requests[slot] += 1
        self._total_requests += 1
        if error:
            self._errors[slot] += 1
            self._total_errors += 1
        if slow:
            self._slow[slot] += 1
            self._total_slow += 1

    def totals(self) -> WindowTotals:
        """The counts over the window as of now."""
        bucket = self._bucket_now()
        if self._guard is None:
            with self._mutex:
                return self._totals(bucket)
        with self._guard:
            return self._totals(bucket)

    def _totals(self, bucket: int) -> WindowTotals:
        if bucket > self._newest:
            self._expire(bucket)
        return WindowTotals(self._total_requests, self._total_errors, self._total_slow)

    def reset(self) -> None:
        """Forget everything counted so far."""
        bucket = self._bucket_now()
        if self._guard is None:
            with self._mutex:
                self._restart(bucket)
        else:
            with self._guard:
                self._restart(bucket)

    def _restart(self, bucket: int) -> None:
        self._clear()
        self._newest = max(bucket, self._newest)
        self._slot = self._newest % self.buckets

    def _bucket_now(self) -> int:
        if cython.compiled and self._clock is _MONOTONIC:  # the same reading, without the call
            # A monotonic reading is finite and positive: C's truncation is int()'s.
            return cython.cast(cython.longlong, _capi.monotonic_now() / self.bucket_seconds)  # type: ignore[no-any-return]
        return int(self._clock() / self.bucket_seconds)

    def _expire(self, bucket: int) -> None:
        """Make ``bucket`` the newest, emptying the slots it laps. Call with the
        lock held, with ``bucket > self._newest``."""
        if bucket - self._newest >= self.buckets:
            self._clear()
        else:
            for n in range(self._newest + 1, bucket + 1):
                slot = n % self.buckets
                self._total_requests -= self._requests[slot]
                self._total_errors -= self._errors[slot]
                self._total_slow -= self._slow[slot]
                self._requests[slot] = self._errors[slot] = self._slow[slot] = 0
        self._newest = bucket
        self._slot = bucket % self.buckets

    def _clear(self) -> None:
        """Zero every bucket and the totals. Call with the lock held."""
        self._requests = [0] * self.buckets
        self._errors = [0] * self.buckets
        self._slow = [0] * self.buckets
        self._total_requests = self._total_errors = self._total_slow = 0


class LatencyWindow:
    """Mean response time over the same kind of window, for gates.

    A ring of ``buckets`` buckets, each holding how many responses it
    counted and their seconds added up; buckets expire as in
    :class:`SlidingWindow`. :meth:`record` is O(1) amortised; :meth:`mean`
    (used by rollout gates, rarely) is O(buckets).

    The newest bucket's two sums are kept in two fields of their own, not in
    the ring: :meth:`record`, which runs at the end of every canary
    response, adds to two numbers (C numbers when compiled) instead of
    reading and writing two list items. When time moves on to a newer
    bucket, the two fields are written into the newest bucket's slot and
    start again from zero; :meth:`mean` adds them to the ring's sums.

    >>> now = [0.0]
    >>> latency = LatencyWindow(buckets=10, clock=lambda: now[0])
    >>> latency.record(0.25); latency.record(0.75)
    >>> latency.mean()
    0.5
    >>> now[0] = 10.0  # ten buckets later: both have left the window
    >>> latency.mean() is None
    True

    :param buckets: number of buckets (default 60).
    :param bucket_seconds: bucket length (default 1 s).
    :param clock: a monotonic clock.
    :raises ConfigurationError: as :class:`SlidingWindow` does.
    """

    def __init__(
        self, buckets: int = 60, bucket_seconds: float = 1.0, clock: t.Callable[[], float] = time.monotonic
    ) -> None:
        SlidingWindow(buckets, bucket_seconds, clock)  # same validation
        self.buckets = buckets
        self.bucket_seconds = float(bucket_seconds)
        self._clock = clock
        if not cython.compiled:  # as in SlidingWindow
            self._mutex = threading.Lock()
        self._guard = None
        self._counts = [0] * buckets  # the ring; the newest bucket's slot stays 0 until it is folded in
        self._seconds = [0.0] * buckets
        self._newest_count = 0  # the newest bucket's sums
        self._newest_seconds = 0.0
        self._newest = int(clock() / self.bucket_seconds)
        self._slot = self._newest % buckets

    @property
    def _lock(self) -> t.Any:
        """A lock a test put in place of the window's own (``None``: the own one)."""
        return self._guard

    @_lock.setter
    def _lock(self, lock: t.Any) -> None:
        self._guard = lock

    def record(self, seconds: float) -> None:
        """Count one response that took ``seconds``."""
        if cython.compiled and self._clock is _MONOTONIC:  # the same reading, without the call
            bucket = cython.cast(cython.longlong, _capi.monotonic_now() / self.bucket_seconds)  # as above
        else:
            bucket = int(self._clock() / self.bucket_seconds)
        if self._guard is None:
            with self._mutex:
                self._add(bucket, seconds)
        else:
            with self._guard:
                self._add(bucket, seconds)

    def _add(self, bucket: int, seconds: float) -> None:
        """Count one response in ``bucket`` (lock held)."""
        if bucket > self._newest:
            self._expire(bucket)
        self._newest_count += 1
        self._newest_seconds += seconds

    def mean(self) -> float | None:
        """Mean seconds per response in the window; ``None`` without any."""
        bucket = int(self._clock() / self.bucket_seconds)
        if self._guard is None:
            with self._mutex:
                count, total = self._sums(bucket)
        else:
            with self._guard:
                count, total = self._sums(bucket)
        return total / count if count else None

    def _sums(self, bucket: int) -> tuple[int, float]:
        if bucket > self._newest:
            self._expire(bucket)
        return sum(self._counts) + self._newest_count, sum(self._seconds) + self._newest_seconds

    def _expire(self, bucket: int) -> None:
        """Make ``bucket`` the newest, emptying the slots it laps (lock held)."""
        # The newest bucket so far becomes an ordinary slot of the ring.
        self._counts[self._slot] = self._newest_count
        self._seconds[self._slot] = self._newest_seconds
        self._newest_count = 0
        self._newest_seconds = 0.0
        if bucket - self._newest >= self.buckets:
            self._counts = [0] * self.buckets
            self._seconds = [0.0] * self.buckets
        else:
            for n in range(self._newest + 1, bucket + 1):
                slot = n % self.buckets
                self._counts[slot] = 0
                self._seconds[slot] = 0.0
        self._newest = bucket
        self._slot = bucket % self.buckets
