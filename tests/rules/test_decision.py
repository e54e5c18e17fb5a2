"""Tests of graywsgi.rules.decision: reading a request and deciding its route (order, shares, keys)."""

from __future__ import annotations

import typing as t

import pytest

from graywsgi.core.context import GrayContext
from graywsgi.core.hashing import fnv1a_32
from graywsgi.core.version import VersionContext
from graywsgi.rules.decision import RequestFacts
from graywsgi.rules.model import (
    Backend,
    KeySpec,
    PathMatch,
    Rule,
    ValueCondition,
    VersionRoute,
)
from graywsgi.rules.routing import CompiledRules
from tests.rules.conftest import EVERYONE, compiled, facts, route

# --- reading the request ----------------------------------------------------


@pytest.mark.parametrize(
    "condition, query, expected",
    [
        pytest.param(ValueCondition("beta", exact="1"), "beta=1", True, id="exact"),
        pytest.param(ValueCondition("beta", exact="a b"), "beta=a+b", True, id="plus is space"),
        pytest.param(ValueCondition("beta", exact="é"), "beta=%C3%A9", True, id="percent-decoded UTF-8"),
        pytest.param(ValueCondition("beta", present=True), "beta=%zz", False, id="malformed escape is absent"),
        pytest.param(ValueCondition("beta", exact="1"), "beta=1&beta=2", True, id="first value"),
        pytest.param(ValueCondition("beta", exact="2"), "beta=1&beta=2", False, id="not the second"),
    ],
)
def test_query_matcher(condition: ValueCondition, query: str, expected: bool) -> None:
    rules = compiled(Rule(name="r", query=(condition,), split=EVERYONE))
    assert (route(rules, facts(query=query, gray_id="u")) == "canary") is expected


@pytest.mark.parametrize(
    "condition, cookie, expected",
    [
        pytest.param(ValueCondition("tier", exact="gold"), "tier=gold; sid=1", True, id="exact"),
        pytest.param(ValueCondition("tier", prefix="g"), "sid=1; tier=gold", True, id="prefix"),
        pytest.param(ValueCondition("tier", present=True), "sid=1", False, id="absent"),
        pytest.param(ValueCondition("tier", present=True), "garbage;;;=\x00", False, id="malformed header"),
    ],
)
def test_cookie_matcher(condition: ValueCondition, cookie: str, expected: bool) -> None:
    rules = compiled(Rule(name="r", cookies=(condition,), split=EVERYONE))
    assert (route(rules, facts(headers={"Cookie": cookie}, gray_id="u")) == "canary") is expected


# --- decision order ----------------------------------------------------------


def test_colour_beats_version_and_weight() -> None:
    rules = compiled(
        Rule(name="r", versions=(VersionRoute("v2", range="^2"),), split=EVERYONE),
        colors={"blue": "stable"},
    )
    assert rules.decide(facts(gray_id="u", traffic_color="BLUE", version="2.0.0")) == ("stable", "A", None, "color")


def test_version_beats_weight() -> None:
    rules = compiled(
        Rule(
            name="r",
            versions=(VersionRoute("canary", exact="1.5.0-rc.1"), VersionRoute("v2", range="^2")),
            split=(Backend("canary", 0),),
        )
    )
    assert rules.decide(facts(version="2.4.0", gray_id="u")) == ("v2", None, "r", "version")
    assert rules.decide(facts(version="1.5.0-rc.1", gray_id="u")).route == "canary"  # type: ignore[union-attr]
    assert rules.decide(facts(version="3.0.0", gray_id="u")).reason == "default"  # type: ignore[union-attr]
    assert rules.decide(facts(version="garbage", gray_id="u")).reason == "default"  # type: ignore[union-attr]


def test_version_route_by_api_version() -> None:
    rules = compiled(Rule(name="r", versions=(VersionRoute("v2", range="^2", source="api_version"),)))
    assert route(rules, facts(api_version=VersionContext("2.1.0"))) == "v2"
    assert route(rules, facts(api_version=VersionContext("1.1.0"))) == "stable"


def test_no_match_default_or_404() -> None:
    rule = Rule(name="api", path=PathMatch(prefix="/api"), split=EVERYONE)
    assert compiled(rule).decide(facts("/web")) == ("stable", "A", None, "no_match")
    assert compiled(rule, no_match="404").decide(facts("/web")) is None


def test_groups() -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", 50, group="treatment"),)))
    ids = [f"g-{n}" for n in range(200)]
    groups = {rules.decide(facts(gray_id=i)).group for i in ids}  # type: ignore[union-attr]
    assert groups == {"treatment", "A"}


# --- shares -----------------------------------------------------------------


def with_id(base: RequestFacts, gray_id: str) -> RequestFacts:
    """The same request from another user (building environs is slow)."""
    ctx = GrayContext(request_id="r", gray_id=gray_id, gray_key=gray_id.encode("utf-8"))
    return RequestFacts(base.environ, ctx)


def canary_share(rules: CompiledRules, n: int = 20_000, **kwargs: t.Any) -> float:
    base = facts(**kwargs)
    hits = sum(route(rules, with_id(base, f"user-{i}")) == "canary" for i in range(n))
    return hits / n


def test_go_gateway_rule_without_salt() -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", 15),)))
    base = facts()
    for i in range(2000):
        gray_id = f"user-{i}"
        expected = "canary" if fnv1a_32(gray_id) % 100 < 15 else "stable"
        assert route(rules, with_id(base, gray_id)) == expected


@pytest.mark.parametrize("weight", [1, 5, 20, 50, 90])
def test_distribution_within_statistical_bounds(weight: int) -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", weight),)))
    share = canary_share(rules)
    p = weight / 100
    sigma = (p * (1 - p) / 20_000) ** 0.5
    assert abs(share - p) < 5 * sigma + 0.005  # 1 % bucket granularity


def test_factors_multiply() -> None:
    rules = compiled(
        Rule(
            name="r",
            hosts=("shop.example.com",),
            path=PathMatch(prefix="/"),
            factors={"host": 0.9, "path": 1.0},
            split=(Backend("canary", 20),),
        )
    )
    assert abs(canary_share(rules) - 0.18) < 0.012


def test_salt_decorrelates_but_keeps_share() -> None:
    plain = compiled(Rule(name="r", split=(Backend("canary", 30),)))
    salted = compiled(Rule(name="r", split=(Backend("canary", 30),), salt="exp-42"))
    ids = [f"user-{i}" for i in range(5000)]
    base = facts()
    a = {i for i in ids if route(plain, with_id(base, i)) == "canary"}
    b = {i for i in ids if route(salted, with_id(base, i)) == "canary"}
    assert abs(len(b) / 5000 - 0.3) < 0.03
    overlap = len(a & b) / len(a)
    assert 0.2 < overlap < 0.4  # independent: about 30 % of a is in b
    assert {i for i in ids if fnv1a_32(b"exp-42:" + i.encode()) % 100 < 30} == b


def test_raising_weights_only_adds_users() -> None:
    ids = [f"ramp-{i}" for i in range(4000)]
    base = facts()
    before: set[str] = set()
    for weight in (0, 1, 5, 25, 50, 100):
        rules = compiled(Rule(name="r", split=(Backend("canary", weight), Backend("v2", 0))))
        now = {i for i in ids if route(rules, with_id(base, i)) == "canary"}
        assert before <= now
        before = now


def test_contiguous_runs_in_declared_order() -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", 10), Backend("v2", 20))))
    base = facts()
    for i in range(3000):
        gray_id = f"u{i}"
        b = fnv1a_32(gray_id) % 100
        expected = "canary" if b < 10 else "v2" if b < 30 else "stable"
        assert route(rules, with_id(base, gray_id)) == expected


def test_percent_mode_is_random_not_sticky() -> None:
    rules = compiled(Rule(name="r", mode="percent", split=(Backend("canary", 30),)))
    same_user = [route(rules, facts(gray_id="one-user")) for _ in range(2000)]
    assert 0.25 < same_user.count("canary") / 2000 < 0.35


def test_no_key_goes_default() -> None:
    rules = compiled(Rule(name="r", split=EVERYONE))
    assert rules.decide(facts()).reason == "default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "key, kwargs, expected_key",
    [
        pytest.param(KeySpec("header", "X-User"), {"headers": {"X-User": "u-7"}}, b"u-7", id="header"),
        pytest.param(KeySpec("cookie", "sid"), {"headers": {"Cookie": "sid=abc"}}, b"abc", id="cookie"),
        pytest.param(KeySpec("query", "uid"), {"query": "uid=%41"}, b"A", id="query"),
    ],
)
def test_configured_key(key: KeySpec, kwargs: dict[str, t.Any], expected_key: bytes) -> None:
    weight = fnv1a_32(expected_key) % 100 + 1
    rules = compiled(Rule(name="r", split=(Backend("canary", weight),)), key=key)
    assert route(rules, facts(gray_id="ignored", **kwargs)) == "canary"
    edge = compiled(Rule(name="r", split=(Backend("canary", weight - 1),)), key=key)
    assert route(edge, facts(gray_id="ignored", **kwargs)) == "stable"


def test_fallback_key_when_gray_id_missing() -> None:
    sid = "session-1"
    weight = fnv1a_32(sid) % 100 + 1
    rules = compiled(Rule(name="r", split=(Backend("canary", weight),)), fallback_key=KeySpec("cookie", "sid"))
    assert route(rules, facts(headers={"Cookie": f"sid={sid}"})) == "canary"


def test_canary_weight_override() -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", 0),)))
    f = facts(gray_id="user-1")  # bucket 0
    assert rules.decide(f).route == "stable"  # type: ignore[union-attr]
    assert rules.decide(f, canary_weight=0.01).route == "canary"  # type: ignore[union-attr]
