"""
Route breaker transitions
=========================

The state machine of a :class:`~graywsgi.core.breaker.RouteBreaker`: the
events that move it (``_Event``), the table ``TRANSITIONS`` of which event
moves which state where -- the only transitions there are -- and the notice
(``_Notice``) of a change made under the breaker's lock, announced after it
is released. The states are :class:`~graywsgi.core.breaker_state.BreakerState`;
the diagram and what each state does are in :mod:`graywsgi.core.breaker`.
"""

from __future__ import annotations

import enum
import typing as t

from graywsgi.core.window import WindowTotals
from graywsgi.core.breaker_state import BreakerState

__all__ = ["TRANSITIONS"]


class _Event(str, enum.Enum):
    TRIP = "trip"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    PROBES_SUCCEEDED = "probes_succeeded"
    PROBE_FAILED = "probe_failed"
    MANUAL_TRIP = "manual_trip"
    MANUAL_RESET = "manual_reset"
    ADOPT_CLOSED = "adopt_closed"
    ADOPT_OPEN = "adopt_open"
    ADOPT_HALF_OPEN = "adopt_half_open"


_ADOPT = {
    BreakerState.CLOSED: _Event.ADOPT_CLOSED,
    BreakerState.OPEN: _Event.ADOPT_OPEN,
    BreakerState.HALF_OPEN: _Event.ADOPT_HALF_OPEN,
}

TRANSITIONS: t.Mapping[tuple[BreakerState, _Event], BreakerState] = {
    (BreakerState.CLOSED, _Event.TRIP): BreakerState.OPEN,
    (BreakerState.OPEN, _Event.COOLDOWN_ELAPSED): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, _Event.PROBES_SUCCEEDED): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, _Event.PROBE_FAILED): BreakerState.OPEN,
    **{(state, _Event.MANUAL_TRIP): BreakerState.OPEN for state in BreakerState},
    **{(state, _Event.MANUAL_RESET): BreakerState.CLOSED for state in BreakerState},
    **{(state, event): adopted for state in BreakerState for adopted, event in _ADOPT.items()},
}


class _Notice(t.NamedTuple):
    """A change made under the lock, announced after it is released."""

    old: BreakerState
    new: BreakerState
    event: _Event
    reason: str
    trip_totals: WindowTotals | None  # set when this is a trip to alert
