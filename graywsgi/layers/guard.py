"""
Guard: breakers, kill switch and lossless reroute
=================================================

:class:`Guard` is what :class:`~graywsgi.layers.router.Router` consults before it
sends a request to a canary route (any route but the default cluster), and
what it tells how the request went.

.. code-block:: python

    from graywsgi import Extraction, Router
    from graywsgi.core.breaker import BreakerPolicy
    from graywsgi.layers.guard import Guard
    from graywsgi.state.rollout_state import FileStateStore

    guard = Guard(policy=BreakerPolicy(error_rate=0.35, min_requests=20),
                  state=FileStateStore("/run/myapp/graywsgi-state.json"))
    app.wsgi_app = Extraction(Router(app.wsgi_app, "rules.yaml", guard=guard))

For each canary-bound request:

1. **Kill switch.** If the shared state says *rolled back*, the canary share
   is 0: the request is rerouted to the default cluster.
2. **Breaker.** The route's :class:`~graywsgi.core.breaker.RouteBreaker`
   (created on first use) admits it, or -- open, or half-open with its
   probes handed out -- the request is rerouted to the default cluster.
   With ``refuse_when_open=True`` (opt-in) rerouted requests are answered
   503 with ``Retry-After`` and problem+json instead.
3. **Outcome.** When the response is closed, the breaker records it: an
   *error* is, by default, a 5xx status or an exception raised by the app
   before or during iteration (``is_error`` changes that); a *slow* call is
   one longer than the policy's ``slow_call_seconds``, measured until the
   response is closed. Requests to the default cluster feed the baseline
   window that ``relative_margin`` compares with.
4. **Lossless reroute.** With ``retry_on_stable=True`` (the default) an
   idempotent request without a body (GET, HEAD, OPTIONS) that the canary
   fails *before its status reaches the client* -- it raised, or chose an
   error status -- is served again by the default cluster: the client sees
   stable's answer, the breaker sees the canary's failure.

Shared state
------------

A trip in one worker is written to the :mod:`graywsgi.state.rollout_state` store, and
every other worker adopts it on its next request after the store's
``check_interval`` -- the trip alert (listeners' ``on_trip``, the log
record, the metric) fires only in the worker that tripped. A route whose
breaker closes again after healthy probes is written back as closed.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

from graywsgi.core.breaker import Admission, BreakerListener, BreakerPolicy, BreakerState, RouteBreaker
from graywsgi.errors import ConfigurationError
from graywsgi.state.rollout_state import MemoryStateStore, RolloutState, RouteState, StateStore
from graywsgi.core.window import LatencyWindow, SlidingWindow, WindowTotals

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Guard", "StatsdAlert", "default_is_error", "IDEMPOTENT_METHODS"]

logger = logging.getLogger("graywsgi.guard")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REJECT = Admission.REJECT
_MONOTONIC = time.monotonic
_SHARED = "shared: "
#: Guard._recent before any route was looked up: no route is this object.
_NO_RECENT = (object(), None, None)


def default_is_error(status: int | None, raised: bool) -> bool:
    """A 5xx status, or an exception from the app, is an error."""
    return raised or status is None or status >= 500


class _ShareState(BreakerListener):
    """Writes this process's trips and recoveries to the shared store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        if reason.startswith(_SHARED):
            return  # adopted from the store: nothing to write back
        if new is BreakerState.OPEN:
            self.store.set_route(route, True, reason)
        elif new is BreakerState.CLOSED:
            self.store.set_route(route, False, reason)


class StatsdAlert(BreakerListener):
    """Count trips in statsd: ``<prefix>.breaker.trip.<route>`` (+1 per trip).

    :param client: a ``statsd.StatsClient`` (or anything with ``incr``).
    :param prefix: metric name prefix.
    """

    def __init__(self, client: t.Any, prefix: str = "graywsgi") -> None:
        self.client = client
        self.prefix = prefix

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in route)
        self.client.incr(f"{self.prefix}.breaker.trip.{safe}")


class Guard:
    """Breakers for the canary routes, the shared kill switch, lossless reroute.

    :param policy: the breaker policy for every canary route.
    :param state: the shared rollout state (kill switch, breaker states); a
        :class:`~graywsgi.state.rollout_state.MemoryStateStore` (this process only) if
        omitted.
    :param listeners: breaker listeners (alerts): ``on_trip`` fires once per
        trip, in the worker that tripped.
    :param refuse_when_open: answer 503 instead of rerouting to stable.
    :param retry_on_stable: serve failed idempotent canary requests again
        from the default cluster (see above).
    :param is_error: ``is_error(status, raised)`` -> whether an outcome is
        an error.
    :param clock: a monotonic clock (injectable for tests).
    :param window_factory: ``factory(route)`` -> the window a route's
        breaker counts in; for fleet-wide counts pass
        ``lambda route: RedisFleetWindow(url, route)``
        (:class:`graywsgi.state.redis_store.RedisFleetWindow`).
    """

    def __init__(
        self,
        *,
        policy: BreakerPolicy = BreakerPolicy(),
        state: StateStore | None = None,
        listeners: t.Sequence[BreakerListener] = (),
        refuse_when_open: bool = False,
        retry_on_stable: bool = True,
        is_error: t.Callable[[int | None, bool], bool] = default_is_error,
        clock: t.Callable[[], float] = time.monotonic,
        window_factory: t.Callable[[str], SlidingWindow] | None = None,
    ) -> None:
        if not isinstance(policy, BreakerPolicy):
            raise ConfigurationError(f"policy must be a BreakerPolicy, got {policy!r}")
        if state is not None and not isinstance(state, StateStore):
            raise ConfigurationError(f"state must be a graywsgi.state.StateStore, got {state!r}")
        if not callable(is_error):
            raise ConfigurationError("is_error must be callable")
        for name, flag in (("refuse_when_open", refuse_when_open), ("retry_on_stable", retry_on_stable)):
            if not isinstance(flag, bool):
                raise ConfigurationError(f"{name} must be True or False, got {flag!r}")
        self.policy = policy
        self.state = state if state is not None else MemoryStateStore()
        self.refuse_when_open = refuse_when_open
        self.retry_on_stable = retry_on_stable
        self.is_error = is_error
        self.window_factory = window_factory
        self._clock = clock
        self._listeners = (_ShareState(self.state), *listeners)
        self.baseline = SlidingWindow(policy.window_buckets, 1.0, clock)
        self.baseline_latency = LatencyWindow(policy.window_buckets, 1.0, clock)
        self._latency: dict[str, LatencyWindow] = {}
        self._breakers: dict[str, RouteBreaker] = {}
        self._synced: dict[str, float] = {}
        # The route admit() or outcome() looked up last, with its breaker and
        # latency window: (route, breaker, latency), one assignment. Almost
        # every canary request names the same route object (the rule set's),
        # so the two lookups per request are mostly one identity check.
        self._recent: tuple[t.Any, t.Any, t.Any] = _NO_RECENT
        self._killed_seen = False
        self._lock = threading.Lock()
        # The last state admit() read, with what it needs of it:
        # (state, killed, routes or None).
        self._seen: tuple[RolloutState | None, bool, t.Mapping[str, RouteState] | None] = (None, False, None)

    @property
    def policy(self) -> BreakerPolicy:
        """The breaker policy for every canary route."""
        return self._policy

    @policy.setter
    def policy(self, policy: BreakerPolicy) -> None:
        self._policy = policy
        self._slow_call_seconds = policy.slow_call_seconds  # outcome() reads it per request; a BreakerPolicy is frozen

    def breaker(self, route: str) -> RouteBreaker:
        """The breaker of ``route``, created on first use."""
        recent = self._recent
        if (_capi.item(recent, 0) if cython.compiled else recent[0]) is route:
            return _capi.item(recent, 1) if cython.compiled else recent[1]  # type: ignore[no-any-return]
        breaker = self._breakers.get(route)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(route)
                if breaker is None:
                    breaker = RouteBreaker(
                        route,
                        self.policy,
                        baseline=self.baseline,
                        listeners=self._listeners,
                        clock=self._clock,
                        window=self.window_factory(route) if self.window_factory is not None else None,
                    )
                    self._latency[route] = LatencyWindow(self.policy.window_buckets, 1.0, self._clock)
                    self._breakers[route] = breaker
        self._recent = (route, breaker, self._latency[route])
        return breaker

    def latency(self, route: str) -> float | None:
        """Mean response time of ``route`` over the window (the default
        cluster's for any route without a breaker)."""
        window = self._latency.get(route)
        return window.mean() if window is not None else self.baseline_latency.mean()

    def admit(self, route: str) -> tuple[Admission, str]:
        """Whether a request may go to canary ``route``, and why not."""
        state = self.state.current()
        seen = self._seen
        if seen[0] is not state:  # stores swap whole states: read a new one once
            if state.killed is not self._killed_seen:
                self._kill_switch_changed(state.killed, state.reason)
            seen = self._seen = (state, state.killed, state.routes or None)  # one assignment: threads see all or none
        if seen[1]:
            return _REJECT, "rolled back"
        breaker = self.breaker(route)
        routes = seen[2]
        shared = routes.get(route) if routes is not None else None
        if shared is not None and self._synced.get(route) != shared.since:
            self._adopt(breaker, shared)
        admission = breaker.admit()
        if admission is _REJECT:
            return admission, f"breaker {breaker.state.value}"
        return admission, ""

    def _kill_switch_changed(self, killed: bool, reason: str) -> None:
        with self._lock:
            if killed is self._killed_seen:
                return
            self._killed_seen = killed
        for listener in self._listeners:
            try:
                (listener.on_rollback if killed else listener.on_resume)(reason)
            except Exception:
                logger.exception("graywsgi breaker listener %r failed", listener)

    def _adopt(self, breaker: RouteBreaker, shared: RouteState) -> None:
        self._synced[breaker.route] = shared.since
        reason = _SHARED + shared.reason
        if shared.open and breaker.state is BreakerState.CLOSED:
            age = max(0.0, time.time() - shared.since)
            breaker.apply_state(BreakerState.OPEN, self._clock() - age, reason)
        elif not shared.open and breaker.state is not BreakerState.CLOSED:
            breaker.apply_state(BreakerState.CLOSED, None, reason)

    def retry_after(self, route: str) -> float:
        """Seconds until the route's breaker lets probes through."""
        return self.breaker(route).retry_after()

    def now(self) -> float:
        """The guard's clock, read now (the start of an outcome)."""
        if cython.compiled and self._clock is _MONOTONIC:  # the same reading, without the call
            return _capi.monotonic_now()
        return self._clock()

    def outcome(self, route: str, admission: Admission | None, started: float, status: int | None,
                raised: bool) -> None:
        """Record how a request went, from the guard's clock time ``started``.

        :param route: the route it was served by.
        :param admission: what :meth:`admit` returned for it; ``None`` for a
            request to the default cluster (it feeds the baseline window).
        :param status: the status code the application chose (``None``: none).
        :param raised: whether the application raised.
        """
        took = self.now() - started
        if self.is_error is default_is_error:  # the usual rule, without the call
            error = raised or status is None or status >= 500
        else:
            error = self.is_error(status, raised)
        slow = took > self._slow_call_seconds
        if admission is None:
            self.baseline_latency.record(took)
            self.baseline.record(error=error, slow=slow)
            return
        recent = self._recent  # one read: its three fields belong together
        if (_capi.item(recent, 0) if cython.compiled else recent[0]) is route:  # admit() looked it up
            breaker: RouteBreaker = _capi.item(recent, 1) if cython.compiled else recent[1]
            latency: LatencyWindow = _capi.item(recent, 2) if cython.compiled else recent[2]
        else:  # another route came in between (another thread), or admit() never saw this one
            breaker = self.breaker(route)
            latency = self._latency[route]
        latency.record(took)
        breaker.record(admission, error=error, slow=slow)

    def _failed(self, status: int | None) -> bool:
        """Whether a canary's chosen status is a failure worth a retry."""
        return self.is_error(status, False)

    def status(self) -> dict[str, t.Any]:
        """The kill switch and every breaker, JSON-serialisable."""
        state = self.state.current()
        return {
            "killed": state.killed,
            "reason": state.reason,
            "revision": state.revision,
            "breakers": {
                route: {**breaker.snapshot(), "mean_latency_seconds": self.latency(route)}
                for route, breaker in sorted(self._breakers.items())
            },
            "baseline": {**self.baseline.totals()._asdict(), "mean_latency_seconds": self.baseline_latency.mean()},
        }

