"""
Extraction breaker
==================

Extraction may call resolvers -- code that turns a header into facts about
the user, such as decoding a user-context token. If a resolver starts
failing or becomes slow, every request would pay for it. The extraction
breaker stops calling them: while it is open, requests skip parsing and get
the fallback context (degrade level L3).

Theory of operation
-------------------

Three states; the transitions are the table ``TRANSITIONS`` below and
nothing else::

    CLOSED --(N consecutive failures)--> OPEN
    CLOSED --(one call slower than slow_call)--> OPEN
    OPEN --(open_for seconds elapsed; one request admitted as probe)--> HALF_OPEN
    HALF_OPEN --(probe succeeded)--> CLOSED
    HALF_OPEN --(probe failed or was slow)--> OPEN

A *failure* is a resolver that raised or returned something unusable, or an
internal error in extraction. A request with malformed headers is **not** a
failure: it is the client's fault and is handled by the degrade levels;
counting it would let any client switch gray routing off for everyone.

The lock guards only the counters and the state; the resolvers run outside
it. While closed and healthy, :meth:`ExtractionBreaker.admit` and
:meth:`ExtractionBreaker.record` take no lock at all.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import typing as t

from graywsgi.core.breaker_state import BreakerState, IllegalTransition
from graywsgi.errors import ConfigurationError

__all__ = ["ExtractionBreaker", "BreakerState", "Admission", "IllegalTransition"]

logger = logging.getLogger("graywsgi.extraction")


class _Event(str, enum.Enum):
    FAILURES_REACHED = "failures_reached"
    SLOW_CALL = "slow_call"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"


TRANSITIONS: t.Mapping[tuple[BreakerState, _Event], BreakerState] = {
    (BreakerState.CLOSED, _Event.FAILURES_REACHED): BreakerState.OPEN,
    (BreakerState.CLOSED, _Event.SLOW_CALL): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.COOLDOWN_ELAPSED): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, _Event.PROBE_SUCCEEDED): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, _Event.PROBE_FAILED): BreakerState.OPEN,
}


class Admission(enum.Enum):
    """What :meth:`ExtractionBreaker.admit` lets a request do."""

    PASS = "pass"  #: parse normally
    PROBE = "probe"  #: parse; this request decides whether the breaker closes
    REJECT = "reject"  #: do not parse (degrade level L3)


class ExtractionBreaker:
    """Consecutive-failure breaker for extraction and its resolvers.

    >>> clock = [0.0]
    >>> breaker = ExtractionBreaker(failure_threshold=2, clock=lambda: clock[0])
    >>> for _ in range(2):
    ...     breaker.record(breaker.admit(), failed=True, duration=0.001)
    >>> breaker.state, breaker.admit()
    (<BreakerState.OPEN: 'open'>, <Admission.REJECT: 'reject'>)
    >>> clock[0] = 60.0
    >>> probe = breaker.admit()
    >>> breaker.record(probe, failed=False, duration=0.001)
    >>> breaker.state
    <BreakerState.CLOSED: 'closed'>

    :param failure_threshold: consecutive failures that open it (default 3).
    :param slow_call: seconds; one call slower than this opens it (default
        0.050).
    :param open_for: seconds it stays open before one probe (default 60).
    :param clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        slow_call: float = 0.050,
        open_for: float = 60.0,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
            raise ConfigurationError(f"failure_threshold must be an int, got {failure_threshold!r}")
        if failure_threshold < 1:
            raise ConfigurationError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not slow_call > 0:
            raise ConfigurationError(f"slow_call must be > 0 seconds, got {slow_call!r}")
        if not open_for > 0:
            raise ConfigurationError(f"open_for must be > 0 seconds, got {open_for!r}")
        self.failure_threshold = failure_threshold
        self.slow_call = float(slow_call)
        self.open_for = float(open_for)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return self._state

    def retry_after(self) -> float:
        """Seconds until the next probe is admitted (0 unless open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.open_for - (self._clock() - self._opened_at))

    def admit(self) -> Admission:
        """Decide whether this request may parse and call resolvers."""
        if self._state is BreakerState.CLOSED:
            return Admission.PASS
        change = None
        with self._lock:
            state = self.state  # re-read under the lock
            if state is BreakerState.CLOSED:
                return Admission.PASS
            if state is BreakerState.HALF_OPEN:
                return Admission.REJECT  # the one probe is still in flight
            if self._clock() - self._opened_at < self.open_for:
                return Admission.REJECT
            change = self._apply(_Event.COOLDOWN_ELAPSED)
        self._log_change(*change)
        return Admission.PROBE

    def record(self, admission: Admission, *, failed: bool, duration: float) -> None:
        """Record how extraction went for a request that :meth:`admit` let in.

        :param admission: what :meth:`admit` returned for this request.
        :param failed: whether a resolver or extraction itself failed.
        :param duration: seconds the resolvers took.
        """
        if admission is Admission.REJECT:
            return
        slow = duration > self.slow_call
        if (
            admission is Admission.PASS
            and not failed
            and not slow
            and self._consecutive_failures == 0
        ):
            return
        change = None
        with self._lock:
            if admission is Admission.PROBE:
                if self._state is BreakerState.HALF_OPEN:
                    event = _Event.PROBE_FAILED if failed or slow else _Event.PROBE_SUCCEEDED
                    change = self._apply(event)
            elif self._state is BreakerState.CLOSED:
                if slow:
                    change = self._apply(_Event.SLOW_CALL)
                elif failed:
                    self._consecutive_failures += 1
                    if self._consecutive_failures >= self.failure_threshold:
                        change = self._apply(_Event.FAILURES_REACHED)
                else:
                    self._consecutive_failures = 0
            # A request admitted before the breaker opened reports late: ignored.
        if change is not None:
            self._log_change(*change)

    def _apply(self, event: _Event) -> tuple[BreakerState, BreakerState, _Event]:
        """Move along the transition table. Call with the lock held."""
        old = self._state
        new = TRANSITIONS.get((old, event))
        if new is None:
            raise IllegalTransition(f"event {event.value!r} is not allowed in state {old.value!r}")
        self._state = new
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is BreakerState.CLOSED:
            self._consecutive_failures = 0
        return old, new, event

    @staticmethod
    def _log_change(old: BreakerState, new: BreakerState, event: _Event) -> None:
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        logger.log(
            level,
            "graywsgi extraction breaker %s -> %s (%s)",
            old.value,
            new.value,
            event.value,
            extra={"graywsgi_breaker_state": new.value},
        )
