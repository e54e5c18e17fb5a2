"""Tests for graywsgi.core.breaker_policy: BreakerPolicy."""

from __future__ import annotations

import pytest

from graywsgi.core.breaker_policy import BreakerPolicy
from graywsgi.errors import ConfigurationError


@pytest.mark.parametrize(
    "field, value",
    [
        pytest.param("min_requests", 0, id="min_requests zero"),
        pytest.param("min_requests", 2.0, id="min_requests float"),
        pytest.param("min_requests", True, id="min_requests bool"),
        pytest.param("error_rate", 35, id="error_rate as a percentage"),
        pytest.param("error_rate", 1.0, id="error_rate 1.0 could never be exceeded"),
        pytest.param("error_rate", -0.1, id="error_rate negative"),
        pytest.param("error_rate", float("nan"), id="error_rate nan"),
        pytest.param("error_rate", "0.35", id="error_rate string"),
        pytest.param("slow_call_seconds", 0, id="slow_call_seconds zero"),
        pytest.param("slow_call_seconds", float("inf"), id="slow_call_seconds infinite"),
        pytest.param("slow_rate", 1.5, id="slow_rate above 1"),
        pytest.param("relative_margin", -0.1, id="relative_margin negative"),
        pytest.param("relative_margin", 1, id="relative_margin 1"),
        pytest.param("cooldown", 0, id="cooldown zero"),
        pytest.param("cooldown", -30, id="cooldown negative"),
        pytest.param("cooldown", float("nan"), id="cooldown nan"),
        pytest.param("probes", 0, id="probes zero"),
        pytest.param("probes", 1.5, id="probes float"),
        pytest.param("window_buckets", 0, id="window_buckets zero"),
    ],
)
def test_bad_policy(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=rf"BreakerPolicy\.{field} .*got {value!r}"):
        BreakerPolicy(**{field: value})  # type: ignore[arg-type]


def test_policy_defaults_and_is_slow() -> None:
    policy = BreakerPolicy()
    assert (policy.min_requests, policy.error_rate, policy.cooldown, policy.probes) == (20, 0.35, 30.0, 5)
    assert policy.window_buckets == 60 and policy.slow_rate is None and policy.relative_margin is None
    assert BreakerPolicy(error_rate=0, slow_rate=0, relative_margin=0, cooldown=1).error_rate == 0
    assert not policy.is_slow(1.0)
    assert policy.is_slow(1.001)
