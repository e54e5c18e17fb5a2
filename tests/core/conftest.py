"""Helpers shared by the tests of graywsgi.core's route breaker and window modules."""

from __future__ import annotations

import sys
import threading
import typing as t

import pytest

from graywsgi.core.breaker import RouteBreaker
from graywsgi.core.breaker_listener import BreakerListener
from graywsgi.core.breaker_policy import BreakerPolicy
from graywsgi.core.breaker_state import BreakerState
from graywsgi.core.window import WindowTotals

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, BreakerState, BreakerState, str]] = []
        self.trips: list[tuple[str, WindowTotals, str]] = []
        self._lock = threading.Lock()

    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        with self._lock:
            self.changes.append((route, old, new, reason))

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        with self._lock:
            self.trips.append((route, totals, reason))

    @property
    def states(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(old, new) for _, old, new, _ in self.changes]


def make(
    policy: BreakerPolicy | None = None, **kwargs: t.Any
) -> tuple[RouteBreaker, Clock, Recorder]:
    clock = Clock()
    recorder = Recorder()
    breaker = RouteBreaker(
        "canary",
        policy or BreakerPolicy(),
        clock=clock,
        listeners=[recorder, *kwargs.pop("listeners", ())],
        **kwargs,
    )
    return breaker, clock, recorder


@pytest.fixture
def busy_switching() -> t.Iterator[None]:
    """Make the interpreter switch threads as often as it can."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)
