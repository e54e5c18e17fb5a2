"""
Route breaker
=============

Takes a canary out of service when it starts failing, and lets it back in
carefully once it has recovered. One :class:`RouteBreaker` guards one route
(typically the canary cluster). Per request, the Breaker layer asks it whether
the request may go to that route (:meth:`RouteBreaker.admit`) and tells it how
the request went (:meth:`RouteBreaker.record`). While the breaker is open the
route's share is 0: a request that would have gone there is served by stable
(lossless reroute, the default) or answered 503 -- that is the caller's
choice; the breaker only answers :attr:`Admission.REJECT`.

.. code-block:: python

    from graywsgi.core.breaker import Admission, BreakerPolicy, RouteBreaker

    canary = RouteBreaker("canary", BreakerPolicy(error_rate=0.2))
    admission = canary.admit()
    if admission is Admission.REJECT:
        ...                                   # serve from stable
    else:
        ...                                   # serve from canary, then:
        canary.record(admission, error=status >= 500,
                      slow=canary.policy.is_slow(duration))

Theory of operation
-------------------

Three states; the transitions are the table ``TRANSITIONS`` of
:mod:`graywsgi.core.breaker_transitions` and nothing else::

    CLOSED --(trip rule holds)--> OPEN
    OPEN --(cooldown elapsed; a request is admitted as first probe)--> HALF_OPEN
    HALF_OPEN --(all `probes` probes succeeded)--> CLOSED
    HALF_OPEN --(a probe failed)--> OPEN
    any --(trip(): kill switch)--> OPEN, held
    any --(reset(): resume)--> CLOSED
    any --(apply_state(): learned from the shared store)--> that state

**Closed**, every request passes and its outcome goes into the route's
:class:`~graywsgi.core.window.SlidingWindow` (``window_buckets`` buckets of 1 s).
After each outcome the trip rule (see :mod:`graywsgi.core.breaker_policy`)
is evaluated on the window's totals.

**Open**, every request is rejected until ``cooldown`` seconds have passed
since it opened; then the next request is admitted as the first probe and
the breaker is half-open. **Half-open**, exactly ``probes`` requests are
admitted as probes, however many threads ask; the others are rejected. When
all of them report success the breaker closes with an empty window. The
first one that fails -- an error, or a slow call when ``slow_rate`` is set --
re-opens it for a full new cooldown; that is a new trip and is alerted
again. (Resilience4j instead waits for all its half-open calls and applies
the rate threshold to them; here one failed probe is enough.)

A **manual trip** (:meth:`RouteBreaker.trip`, the kill switch) opens the
breaker and *holds* it open: no cooldown, no probes, until
:meth:`RouteBreaker.reset` (resume). An operator's rollback is never undone
by a few healthy probes. This is Resilience4j's ``FORCED_OPEN`` state and
Hystrix's ``circuitBreaker.forceOpen``.

Each request that :meth:`~RouteBreaker.admit` let in (PASS or PROBE) must be
reported exactly once to :meth:`~RouteBreaker.record` -- a probe that is
never reported keeps its place in the half-open budget. Reports that arrive
after the state changed under them are ignored: a PASS reported while the
breaker is not closed (the request was admitted before the trip), a PROBE
reported while it is not half-open, and more probe reports than probes were
handed out. Rejected requests are never counted.

Concurrency
-----------

While closed, :meth:`~RouteBreaker.admit` takes no lock and
:meth:`~RouteBreaker.record` takes only the window's. While open and cooling
down, ``admit`` takes no lock either. The breaker's own lock is taken to
change state and to hand out probes; it guards the state and the probe
counts only. Listeners and logging run after it is released, and a listener
that raises is logged and ignored: it never breaks the request. What is
logged and which listener hooks run: :mod:`graywsgi.core.breaker_listener`.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import typing as t

from graywsgi.core.breaker_listener import BreakerListener
from graywsgi.core.breaker_policy import BreakerPolicy
from graywsgi.core.breaker_transitions import _ADOPT, TRANSITIONS as TRANSITIONS, _Event, _Notice
from graywsgi.errors import ConfigurationError
from graywsgi.core.breaker_state import BreakerState, IllegalTransition
from graywsgi.core.window import SlidingWindow, WindowTotals

__all__ = ["RouteBreaker", "BreakerPolicy", "BreakerListener", "BreakerState", "Admission", "IllegalTransition"]

logger = logging.getLogger("graywsgi.breaker")

_TOLERANCE = 1e-9
_MAX_COUNT = 2**62  # no window counts this many requests: a larger min_requests is the same as this one


class Admission(enum.Enum):
    """What :meth:`RouteBreaker.admit` lets a request do."""

    PASS = "pass"  #: send it to the route; its outcome counts in the window
    PROBE = "probe"  #: send it to the route; its outcome decides whether the breaker closes
    REJECT = "reject"  #: do not send it to the route (reroute to stable, or 503)


def _above(value: float, limit: float) -> bool:
    return value > limit + _TOLERANCE


# Enum members looked up on their class cost a metaclass call each time in
# Python 3.11; the per-request paths use these module-level names instead.
_CLOSED = BreakerState.CLOSED
_PASS = Admission.PASS


class RouteBreaker:
    """Sliding-window breaker for one route.

    >>> now = [0.0]
    >>> policy = BreakerPolicy(min_requests=4, error_rate=0.5, cooldown=30, probes=2)
    >>> canary = RouteBreaker("canary", policy, clock=lambda: now[0])
    >>> for error in (True, True, False, True):
    ...     canary.record(canary.admit(), error=error, slow=False)
    >>> canary.state, canary.admit()
    (<BreakerState.OPEN: 'open'>, <Admission.REJECT: 'reject'>)
    >>> now[0] = 30.0
    >>> probes = [canary.admit() for _ in range(3)]
    >>> probes
    [<Admission.PROBE: 'probe'>, <Admission.PROBE: 'probe'>, <Admission.REJECT: 'reject'>]
    >>> for probe in probes:
    ...     canary.record(probe, error=False, slow=False)
    >>> canary.state
    <BreakerState.CLOSED: 'closed'>

    :param route: the route (cluster) name, for logs, listeners and status.
    :param policy: when it trips and how it recovers.
    :param baseline: the window of the route to compare with (stable's),
        required when ``policy.relative_margin`` is set.
    :param listeners: :class:`BreakerListener` instances to notify.
    :param clock: a monotonic clock in seconds (injectable for tests); the
        window uses it too.
    :param window: the window to count in, instead of a new
        :class:`SlidingWindow` (e.g. a fleet-wide
        :class:`graywsgi.state.redis_store.RedisFleetWindow`).
    :raises ConfigurationError: on an empty route name, a relative policy
        without a baseline, or a listener that is not a
        :class:`BreakerListener`.
    """

    def __init__(
        self,
        route: str,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        baseline: SlidingWindow | None = None,
        listeners: t.Sequence[BreakerListener] = (),
        clock: t.Callable[[], float] = time.monotonic,
        window: SlidingWindow | None = None,
    ) -> None:
        if not isinstance(route, str) or not route:
            raise ConfigurationError(f"route must be a non-empty string, got {route!r}")
        if not isinstance(policy, BreakerPolicy):
            raise ConfigurationError(f"policy must be a BreakerPolicy, got {policy!r}")
        if baseline is not None and not isinstance(baseline, SlidingWindow):
            raise ConfigurationError(f"baseline must be a SlidingWindow, got {baseline!r}")
        if policy.relative_margin is not None and baseline is None:
            raise ConfigurationError(
                f"route {route!r}: policy.relative_margin={policy.relative_margin!r} needs a baseline window"
            )
        for listener in listeners:
            if not isinstance(listener, BreakerListener):
                raise ConfigurationError(f"listeners must be BreakerListener instances, got {listener!r}")
        self.route = route
        self.policy = policy  # also sets _min_requests
        self.baseline = baseline
        if window is not None and not isinstance(window, SlidingWindow):
            raise ConfigurationError(f"window must be a SlidingWindow, got {window!r}")
        self.window = window if window is not None else SlidingWindow(policy.window_buckets, 1.0, clock)
        self._listeners = tuple(listeners)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0  # meaningful only while not closed
        self._held = False
        self._probes_issued = 0
        self._probes_reported = 0

    def __repr__(self) -> str:
        return f"RouteBreaker({self.route!r}, state={self._state.value})"

    @property
    def policy(self) -> BreakerPolicy:
        """When it trips and how it recovers."""
        return self._policy

    @policy.setter
    def policy(self, policy: BreakerPolicy) -> None:
        self._policy = policy
        self._min_requests = min(policy.min_requests, _MAX_COUNT)  # read per request; a BreakerPolicy is frozen

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return self._state

    @property
    def opened_at(self) -> float | None:
        """Clock time at which the current open period began (also while
        half-open); ``None`` while closed."""
        return None if self._state is BreakerState.CLOSED else self._opened_at

    @property
    def held(self) -> bool:
        """Whether it is held open by the kill switch (:meth:`trip`)."""
        return self._held

    def retry_after(self) -> float:
        """Seconds until the route may take requests again, as a hint for a
        ``Retry-After`` header: the rest of the cooldown while open, the full
        cooldown while held open, 0 otherwise. Round it up."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        if self._held:
            return self.policy.cooldown
        return max(0.0, self.policy.cooldown - (self._clock() - self._opened_at))

    def admit(self) -> Admission:
        """Decide whether this request may go to the route."""
        state = self._state
        if state is _CLOSED:
            return _PASS
        if state is BreakerState.OPEN and (
            self._held or self._clock() - self._opened_at < self.policy.cooldown
        ):
            return Admission.REJECT
        if state is BreakerState.HALF_OPEN and self._probes_issued >= self.policy.probes:
            return Admission.REJECT
        notice = None
        with self._lock:
            state = self._state  # re-read under the lock
            if state is BreakerState.CLOSED:
                return Admission.PASS
            if state is BreakerState.OPEN:
                now = self._clock()
                if self._held or now - self._opened_at < self.policy.cooldown:
                    return Admission.REJECT
                notice = self._apply(_Event.COOLDOWN_ELAPSED, "cooldown elapsed", now)
            if self._probes_issued >= self.policy.probes:
                return Admission.REJECT
            self._probes_issued += 1
        if notice is not None:
            self._announce(notice)
        return Admission.PROBE

    def record(self, admission: Admission, *, error: bool, slow: bool) -> None:
        """Report how a request that :meth:`admit` let in went.

        :param admission: what :meth:`admit` returned for this request.
        :param error: whether it failed (a 5xx or an exception).
        :param slow: whether it was slow (see :meth:`BreakerPolicy.is_slow`).
        """
        if admission is _PASS:
            if self._state is not _CLOSED:
                return  # admitted before the breaker opened: not this era's data
            counted = self.window._count_to_judge(error, slow, self._min_requests)
            if counted is None:
                return  # too few to judge, or nothing went wrong in the window
            totals = WindowTotals(*counted)
            reason = self._trip_reason(totals)
            if reason is None:
                return
            with self._lock:
                if self._state is not BreakerState.CLOSED:
                    return  # another thread tripped it first
                notice = self._apply(_Event.TRIP, reason, self._clock(), totals)
            self._announce(notice)
        elif admission is Admission.PROBE:
            failed = error or (slow and self.policy.slow_rate is not None)
            notice = None
            with self._lock:
                if self._state is not BreakerState.HALF_OPEN or self._probes_reported >= self._probes_issued:
                    return  # a probe from an earlier half-open period, or a duplicate report
                self._probes_reported += 1
                if failed:
                    reason = "probe failed" if error else "probe was slow"
                    notice = self._apply(_Event.PROBE_FAILED, reason, self._clock(), self.window.totals())
                elif self._probes_reported >= self.policy.probes:
                    notice = self._apply(
                        _Event.PROBES_SUCCEEDED, f"{self.policy.probes} probes succeeded", self._clock()
                    )
            if notice is not None:
                self._announce(notice)

    def trip(self, reason: str = "manual") -> bool:
        """Open the breaker and hold it open until :meth:`reset` (the kill
        switch).

        :return: whether anything changed (``False`` if it was held open
            already).
        """
        with self._lock:
            if self._state is BreakerState.OPEN and self._held:
                return False
            tripping = self._state is not BreakerState.OPEN
            notice = self._apply(
                _Event.MANUAL_TRIP, reason, self._clock(), self.window.totals() if tripping else None
            )
            self._held = True
        self._announce(notice)
        return True

    def reset(self, reason: str = "manual") -> bool:
        """Close the breaker with an empty window (resume).

        :return: whether the state changed (``False`` if it was closed; the
            window is emptied anyway).
        """
        with self._lock:
            notice = self._apply(_Event.MANUAL_RESET, reason, self._clock())
        self._announce(notice)
        return notice.old is not notice.new

    def apply_state(
        self,
        state: BreakerState,
        opened_at: float | None,
        reason: str,
        *,
        held: bool = False,
    ) -> bool:
        """Adopt a state learned from another process (through the shared
        store). ``on_state_change`` fires; ``on_trip`` does not -- the
        process that tripped has alerted.

        :param state: the state to adopt (a :class:`BreakerState` or its
            value, e.g. ``"open"``).
        :param opened_at: when the open period began, **on this breaker's
            clock** (the store must translate: ``clock() - age``), so the
            cooldown ends when the tripping process's does; ``None`` for now.
            A time in the future is taken as now. Ignored for ``CLOSED``.
        :param reason: why, for logs and listeners.
        :param held: adopt a kill switch (only with ``OPEN``).
        :return: whether the state (or the hold) changed; when it did not,
            ``opened_at`` still aligns the cooldown.
        :raises ValueError: if ``state`` is not a breaker state.
        """
        state = BreakerState(state)
        held = held and state is BreakerState.OPEN
        now = self._clock()
        started = now if opened_at is None else min(opened_at, now)
        with self._lock:
            if state is self._state and held == self._held:
                if state is not BreakerState.CLOSED and opened_at is not None:
                    self._opened_at = started
                return False
            notice = self._apply(_ADOPT[state], reason, now)
            if state is not BreakerState.CLOSED:
                self._opened_at = started
            self._held = held
        self._announce(notice)
        return True

    def snapshot(self) -> dict[str, object]:
        """The breaker's state for a status surface, JSON-serialisable.

        >>> RouteBreaker("canary").snapshot()["totals"]
        {'requests': 0, 'errors': 0, 'slow': 0}
        """
        with self._lock:
            state = self._state
            opened_at = None if state is BreakerState.CLOSED else self._opened_at
            held = self._held
            issued, reported = self._probes_issued, self._probes_reported
        totals = self.window.totals()
        data: dict[str, object] = {
            "route": self.route,
            "state": state.value,
            "opened_at": opened_at,
            "held": held,
            "retry_after": self.retry_after(),
            "totals": totals._asdict(),
            "error_rate": totals.error_rate,
            "slow_rate": totals.slow_rate,
            "probes": (
                {"allowed": self.policy.probes, "issued": issued, "reported": reported}
                if state is BreakerState.HALF_OPEN
                else None
            ),
            "baseline": None,
        }
        if self.baseline is not None:
            base = self.baseline.totals()
            data["baseline"] = {**base._asdict(), "error_rate": base.error_rate, "slow_rate": base.slow_rate}
        return data

    def _trip_reason(self, totals: WindowTotals) -> str | None:
        """Why the trip rule holds for these totals, or ``None``. The volume
        rule has been checked by the caller."""
        policy = self.policy
        absolute = True
        if policy.relative_margin is not None and self.baseline is not None:
            base = self.baseline.totals()
            if base.requests >= policy.min_requests:
                absolute = False
                if _above(totals.error_rate - base.error_rate, policy.relative_margin):
                    return (
                        f"error rate {totals.error_rate:.1%} ({totals.errors} of {totals.requests})"
                        f" is more than {policy.relative_margin:.1%} above the baseline's"
                        f" {base.error_rate:.1%} ({base.errors} of {base.requests})"
                    )
        if absolute and _above(totals.error_rate, policy.error_rate):
            return (
                f"error rate {totals.error_rate:.1%} ({totals.errors} of {totals.requests})"
                f" is above {policy.error_rate:.1%}"
            )
        if policy.slow_rate is not None and _above(totals.slow_rate, policy.slow_rate):
            return (
                f"slow-call rate {totals.slow_rate:.1%} ({totals.slow} of {totals.requests})"
                f" is above {policy.slow_rate:.1%}"
            )
        return None

    def _apply(
        self,
        event: _Event,
        reason: str,
        now: float,
        trip_totals: WindowTotals | None = None,
    ) -> _Notice:
        """Move along the transition table. Call with the lock held.

        ``trip_totals`` marks a change that is a trip to alert.
        """
        old = self._state
        new = TRANSITIONS.get((old, event))
        if new is None:
            raise IllegalTransition(
                f"route {self.route!r}: event {event.value!r} is not allowed in state {old.value!r}"
            )
        self._held = False
        self._probes_issued = self._probes_reported = 0
        if new is BreakerState.OPEN and old is not BreakerState.OPEN:
            self._opened_at = now
        elif new is BreakerState.CLOSED:
            self.window.reset()
        self._state = new  # last, for the lock-free readers in admit()
        return _Notice(old, new, event, reason, trip_totals if new is BreakerState.OPEN else None)

    def _announce(self, notice: _Notice) -> None:
        """Log a change and call the listeners. Call without the lock."""
        old, new, event, reason, totals = notice
        if totals is not None:
            logger.warning(
                "graywsgi breaker %r tripped: %s -> %s (%s); window: %d requests,"
                " %d errors (%.1f%%), %d slow (%.1f%%)",
                self.route,
                old.value,
                new.value,
                reason,
                totals.requests,
                totals.errors,
                100 * totals.error_rate,
                totals.slow,
                100 * totals.slow_rate,
                extra={
                    "graywsgi_route": self.route,
                    "graywsgi_breaker_state": new.value,
                    "graywsgi_window": totals._asdict(),
                },
            )
        else:
            logger.info(
                "graywsgi breaker %r: %s -> %s (%s: %s)",
                self.route,
                old.value,
                new.value,
                event.value,
                reason,
                extra={"graywsgi_route": self.route, "graywsgi_breaker_state": new.value},
            )
        if old is not new:
            for listener in self._listeners:
                try:
                    listener.on_state_change(self.route, old, new, reason)
                except Exception:
                    logger.exception("graywsgi breaker %r: listener %r failed in on_state_change", self.route, listener)
        if totals is not None:
            for listener in self._listeners:
                try:
                    listener.on_trip(self.route, totals, reason)
                except Exception:
                    logger.exception("graywsgi breaker %r: listener %r failed in on_trip", self.route, listener)
