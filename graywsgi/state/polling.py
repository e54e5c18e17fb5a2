"""Run a check at most once per interval, on the request path, without waiting."""

from __future__ import annotations

import threading
import time
import typing as t

from graywsgi.errors import ConfigurationError

__all__ = ["Throttle"]


class Throttle:
    """At most one run of a check per ``interval``; nobody waits for it.

    The first request after the interval runs the check; requests that
    arrive while it runs go on with what is already in force instead of
    queueing behind it. No thread is involved: a worker that gets no
    requests does no checks.

    :param interval: seconds between checks (0: every call).
    :param clock: a monotonic clock.
    """

    __slots__ = ("interval", "_clock", "_lock", "_next")

    def __init__(self, interval: float, clock: t.Callable[[], float] = time.monotonic) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            raise ConfigurationError(f"check_interval must be >= 0 seconds, got {interval!r}")
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def maybe(self, check: t.Callable[[], object]) -> None:
        """Run ``check`` if the interval has passed and nobody else is running it."""
        if self._clock() < self._next:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._next = self._clock() + self.interval
            check()
        finally:
            self._lock.release()

    def now(self, check: t.Callable[[], object]) -> None:
        """Run ``check`` now, waiting for a run in progress to finish first."""
        with self._lock:
            check()
            self._next = self._clock() + self.interval

    def postpone(self) -> None:
        """Count the interval from now (the caller has just checked)."""
        self._next = self._clock() + self.interval
