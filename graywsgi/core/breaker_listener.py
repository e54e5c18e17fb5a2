"""
Route breaker listeners
=======================

:class:`BreakerListener`: the hooks a
:class:`~graywsgi.core.breaker.RouteBreaker` calls on its trips and state
changes, and the :class:`~graywsgi.layers.guard.Guard` calls when the kill
switch is set or cleared. The breaker itself is in
:mod:`graywsgi.core.breaker`, its policy in :mod:`graywsgi.core.breaker_policy`.

Alerts and listeners
--------------------

Every trip made by this process -- by the trip rule, a failed probe or
:meth:`~graywsgi.core.breaker.RouteBreaker.trip` -- logs one WARNING record
on the ``graywsgi.breaker`` logger with the route, the window's totals
and rates, and calls :meth:`BreakerListener.on_trip` exactly once, however
many threads report errors at that moment. Every state change calls
:meth:`BreakerListener.on_state_change`. A state adopted from another
process (:meth:`~graywsgi.core.breaker.RouteBreaker.apply_state`) is not a
trip here: the process that tripped has alerted, so only
``on_state_change`` fires.
"""

from __future__ import annotations

from graywsgi.core.window import WindowTotals
from graywsgi.core.breaker_state import BreakerState

__all__ = ["BreakerListener"]


class BreakerListener:
    """Hooks for breaker events. Subclass it and override what you need;
    the methods here do nothing.

    Listeners are called after the breaker's lock is released, in the thread
    whose call caused the event, so they may call back into the breaker. One
    that raises is logged on ``graywsgi.breaker`` and ignored.
    """

    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        """The breaker of ``route`` went from ``old`` to ``new``."""

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        """The breaker of ``route`` tripped (closed or half-open to open),
        in this process; called once per trip. ``totals`` are the window's
        counts at that moment."""

    def on_rollback(self, reason: str) -> None:
        """The kill switch was set; called by :class:`graywsgi.layers.guard.Guard` in
        every worker that sees it (once per worker)."""

    def on_resume(self, reason: str) -> None:
        """The kill switch was cleared (once per worker that sees it)."""
