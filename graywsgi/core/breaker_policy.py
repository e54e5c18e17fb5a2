"""
Route breaker policy
====================

:class:`BreakerPolicy`: when a :class:`~graywsgi.core.breaker.RouteBreaker`
trips and how it recovers, checked once when it is built. The states the
breaker moves through are described in :mod:`graywsgi.core.breaker`, the
listeners it calls in :mod:`graywsgi.core.breaker_listener`.

Trip rule
---------

While the breaker is closed, the trip rule is evaluated on the route's
window's totals after each outcome. It holds when the window has at least
``min_requests`` requests and

- the error rate is **above** ``error_rate``; or, with ``relative_margin``
  set, the route's error rate is above the *baseline* window's (stable's)
  by **more than** the margin -- provided the baseline window has
  ``min_requests`` requests too; with fewer, the absolute rule applies; or
- ``slow_rate`` is set and the slow-call rate is **above** it (always an
  absolute rule).

"Above" is strict: 7 errors in 20 requests is exactly 35 % and does not trip
the default policy; 8 do. Resilience4j and Hystrix trip *at* their threshold
(``>=``), so a threshold carried over from them trips one error later, and
only at the exact boundary; ``error_rate=1.0`` could never trip and is
refused. The volume rule matches theirs: 20 requests are enough with
``min_requests=20``. Rates are compared with a tolerance of 1e-9 so that
float noise (``0.4 - 0.3 == 0.10000000000000003``) does not decide.

Policy fields and their Resilience4j and Hystrix names
------------------------------------------------------

Rates are fractions here (0.35), percentages there (35).

=====================  =================================================  ==================================================
``BreakerPolicy``      Resilience4j ``CircuitBreakerConfig``              Hystrix ``HystrixCommandProperties``
=====================  =================================================  ==================================================
``min_requests``       ``minimumNumberOfCalls``                           ``circuitBreaker.requestVolumeThreshold``
``error_rate``         ``failureRateThreshold`` (trips at ``>=``)         ``circuitBreaker.errorThresholdPercentage`` (``>=``)
``slow_call_seconds``  ``slowCallDurationThreshold``                      -- (a timeout, ``execution.isolation.thread.timeoutInMilliseconds``, counts as an error)
``slow_rate``          ``slowCallRateThreshold`` (100 % = off)            --
``relative_margin``    --                                                 --
``cooldown``           ``waitDurationInOpenState``                        ``circuitBreaker.sleepWindowInMilliseconds``
``probes``             ``permittedNumberOfCallsInHalfOpenState``          -- (always one test request)
``window_buckets``     ``slidingWindowSize``, ``slidingWindowType``       ``metrics.rollingStats.timeInMilliseconds`` with
                       ``= TIME_BASED``                                   ``numBuckets`` buckets of 1 s
``trip()``             ``transitionToForcedOpenState()``                  ``circuitBreaker.forceOpen``
``reset()``            ``reset()``                                        --
=====================  =================================================  ==================================================
"""

from __future__ import annotations

import dataclasses
import math

from graywsgi.core.window import MAX_BUCKETS
from graywsgi.errors import ConfigurationError

__all__ = ["BreakerPolicy"]


def _check_int(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"BreakerPolicy.{field} must be an int, got {value!r}")
    if value < 1:
        raise ConfigurationError(f"BreakerPolicy.{field} must be >= 1, got {value!r}")


def _check_seconds(field: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"BreakerPolicy.{field} must be a finite number of seconds > 0, got {value!r}")


def _check_fraction(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigurationError(
            f"BreakerPolicy.{field} must be a fraction in [0, 1) (35 % is 0.35), got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class BreakerPolicy:
    """When a route breaker trips and how it recovers.

    See the module documentation for the trip rule and for the Resilience4j
    and Hystrix names of each field.

    >>> BreakerPolicy(error_rate=0.5, cooldown=10).probes
    5
    >>> BreakerPolicy(error_rate=35)
    Traceback (most recent call last):
      ...
    graywsgi.errors.ConfigurationError: BreakerPolicy.error_rate must be a fraction in [0, 1) (35 % is 0.35), got 35

    :param min_requests: requests the window must hold before the breaker
        may trip (default 20).
    :param error_rate: the error rate (0-1) above which it trips (default
        0.35).
    :param slow_call_seconds: a call that takes longer is slow (default 1.0);
        see :meth:`is_slow`.
    :param slow_rate: the slow-call rate (0-1) above which it trips; ``None``
        (the default): slow calls never trip it.
    :param relative_margin: if set, the error rule compares with the
        baseline: it trips when the route's error rate exceeds the
        baseline's by more than this (0-1), as long as the baseline has
        ``min_requests`` requests; needs a baseline window.
    :param cooldown: seconds it stays open before probing (default 30).
    :param probes: probe requests admitted when half-open; all must succeed
        for it to close (default 5).
    :param window_buckets: seconds of history in the window (buckets of 1 s,
        default 60).
    :raises ConfigurationError: naming the field and the value, if one
        cannot work.
    """

    min_requests: int = 20
    error_rate: float = 0.35
    slow_call_seconds: float = 1.0
    slow_rate: float | None = None
    relative_margin: float | None = None
    cooldown: float = 30.0
    probes: int = 5
    window_buckets: int = 60

    def __post_init__(self) -> None:
        _check_int("min_requests", self.min_requests)
        _check_fraction("error_rate", self.error_rate)
        _check_seconds("slow_call_seconds", self.slow_call_seconds)
        if self.slow_rate is not None:
            _check_fraction("slow_rate", self.slow_rate)
        if self.relative_margin is not None:
            _check_fraction("relative_margin", self.relative_margin)
        _check_seconds("cooldown", self.cooldown)
        _check_int("probes", self.probes)
        _check_int("window_buckets", self.window_buckets)
        if self.window_buckets > MAX_BUCKETS:
            raise ConfigurationError(
                f"BreakerPolicy.window_buckets must be at most {MAX_BUCKETS:,}, got {self.window_buckets:,}"
            )

    def is_slow(self, duration: float) -> bool:
        """Whether a call that took ``duration`` seconds is a slow call
        (strictly longer than ``slow_call_seconds``)."""
        return duration > self.slow_call_seconds
