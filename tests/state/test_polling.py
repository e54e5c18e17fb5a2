from __future__ import annotations

import threading
import time

import pytest

from graywsgi.state.polling import Throttle
from graywsgi.errors import ConfigurationError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_runs_at_most_once_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(1.0, clock)
    runs: list[float] = []
    for step in (0.0, 0.5, 0.999, 1.0, 1.5, 2.0):
        clock.now = step
        throttle.maybe(lambda: runs.append(clock.now))
    assert runs == [0.0, 1.0, 2.0]


def test_now_runs_and_restarts_the_interval() -> None:
    clock = Clock()
    throttle = Throttle(1.0, clock)
    runs: list[str] = []
    throttle.now(lambda: runs.append("now"))
    clock.now = 0.5
    throttle.maybe(lambda: runs.append("maybe"))
    assert runs == ["now"]


def test_nobody_waits_for_a_check_in_progress() -> None:
    throttle = Throttle(0.0)
    started, release = threading.Event(), threading.Event()

    def slow_check() -> None:
        started.set()
        release.wait(10)

    worker = threading.Thread(target=throttle.maybe, args=(slow_check,))
    worker.start()
    assert started.wait(10)
    ran: list[bool] = []
    began = time.monotonic()
    throttle.maybe(lambda: ran.append(True))  # returns at once: the check is busy
    assert ran == [] and time.monotonic() - began < 5
    release.set()
    worker.join(10)
    throttle.maybe(lambda: ran.append(True))
    assert ran == [True]


@pytest.mark.parametrize("interval", [-1, float("nan"), "1", True])
def test_bad_interval(interval: object) -> None:
    with pytest.raises(ConfigurationError, match="check_interval"):
        Throttle(interval)  # type: ignore[arg-type]
