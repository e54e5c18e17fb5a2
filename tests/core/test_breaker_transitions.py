"""Tests for graywsgi.core.breaker_transitions: the transition table."""

from __future__ import annotations

import itertools

import pytest

from graywsgi.core.breaker_state import BreakerState, IllegalTransition
from graywsgi.core.breaker_transitions import TRANSITIONS, _Event
from graywsgi.errors import GrayError
from tests.core.conftest import CLOSED, HALF_OPEN, OPEN, make


@pytest.mark.parametrize(
    "state, event",
    [pytest.param(s, e, id=f"{s.value} + {e.value}") for s, e in itertools.product(BreakerState, _Event)],
)
def test_transition_table(state: BreakerState, event: _Event) -> None:
    breaker, clock, _ = make()
    breaker._state = state
    breaker._opened_at = 5.0
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            breaker._apply(event, "test", clock())
        assert breaker.state is state  # an illegal transition changes nothing
        assert breaker._opened_at == 5.0
    else:
        notice = breaker._apply(event, "test", clock())
        assert (notice.old, notice.new, notice.event) == (state, expected, event)
        assert breaker.state is expected
        if expected is OPEN:
            assert breaker._opened_at == (5.0 if state is OPEN else clock())


def test_table_shape() -> None:
    automatic = {
        (CLOSED, _Event.TRIP): OPEN,
        (OPEN, _Event.COOLDOWN_ELAPSED): HALF_OPEN,
        (HALF_OPEN, _Event.PROBES_SUCCEEDED): CLOSED,
        (HALF_OPEN, _Event.PROBE_FAILED): OPEN,
    }
    for key, new in automatic.items():
        assert TRANSITIONS[key] is new
    for state in BreakerState:
        assert TRANSITIONS[state, _Event.MANUAL_TRIP] is OPEN
        assert TRANSITIONS[state, _Event.MANUAL_RESET] is CLOSED
        assert TRANSITIONS[state, _Event.ADOPT_OPEN] is OPEN
        assert TRANSITIONS[state, _Event.ADOPT_HALF_OPEN] is HALF_OPEN
        assert TRANSITIONS[state, _Event.ADOPT_CLOSED] is CLOSED
    assert len(TRANSITIONS) == len(automatic) + 5 * len(BreakerState)
    assert issubclass(IllegalTransition, GrayError)
