"""Tests of graywsgi.rules.routing: compiling and checking a rule set, its matchers and its index."""

from __future__ import annotations

import typing as t

import pytest
from werkzeug.test import create_environ

from graywsgi.core.context import GrayContext
from graywsgi.core.version import VersionContext
from graywsgi.rules.decision import RequestFacts
from graywsgi.rules.model import (
    Backend,
    Cluster,
    KeySpec,
    PathMatch,
    Rule,
    RuleSet,
    ValueCondition,
)
from graywsgi.rules.routing import CompiledRules, RuleError
from tests.rules.conftest import CLUSTERS, EVERYONE, compiled, facts, route

# --- matchers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts, host, expected",
    [
        pytest.param(("shop.example.com",), "shop.example.com", True, id="exact"),
        pytest.param(("shop.example.com",), "SHOP.Example.COM", True, id="exact, case-insensitive"),
        pytest.param(("shop.example.com",), "shop.example.com:8080", True, id="exact ignores request port"),
        pytest.param(("shop.example.com:8080",), "shop.example.com:8080", True, id="host with port"),
        pytest.param(("shop.example.com:8080",), "shop.example.com:9090", False, id="other port"),
        pytest.param(("shop.example.com",), "api.example.com", False, id="other host"),
        pytest.param(("*.example.com",), "shop.example.com", True, id="wildcard one label"),
        pytest.param(("*.example.com",), "a.b.example.com", True, id="wildcard several labels"),
        pytest.param(("*.example.com",), "example.com", False, id="wildcard not apex"),
        pytest.param(("*.example.com",), "shop.example.org", False, id="wildcard other domain"),
        pytest.param(("*.example.com",), "badexample.com", False, id="wildcard needs dot"),
        pytest.param(("a.test", "*.example.com"), "a.test", True, id="any of several"),
    ],
)
def test_host_matcher(hosts: tuple[str, ...], host: str, expected: bool) -> None:
    rules = compiled(Rule(name="r", hosts=hosts, split=EVERYONE))
    assert (route(rules, facts(host=host, gray_id="u")) == "canary") is expected


@pytest.mark.parametrize(
    "path_match, path, expected",
    [
        pytest.param(PathMatch(prefix="/api"), "/api", True, id="prefix itself"),
        pytest.param(PathMatch(prefix="/api"), "/api/orders/1", True, id="prefix deeper"),
        pytest.param(PathMatch(prefix="/api/"), "/api/orders", True, id="prefix trailing slash"),
        pytest.param(PathMatch(prefix="/api"), "/apix", False, id="prefix whole segments"),
        pytest.param(PathMatch(prefix="/api"), "/", False, id="prefix root"),
        pytest.param(PathMatch(prefix="/"), "/anything/at/all", True, id="root prefix"),
        pytest.param(PathMatch(template="/orders/{id}"), "/orders/42", True, id="template"),
        pytest.param(PathMatch(template="/orders/{id}"), "/orders/42/", True, id="template trailing slash"),
        pytest.param(PathMatch(template="/orders/{id}"), "/orders", False, id="template too short"),
        pytest.param(PathMatch(template="/orders/{id}"), "/orders/42/items", False, id="template too long"),
        pytest.param(PathMatch(template="/o/{a}/i/{b}"), "/o/1/i/2", True, id="two params"),
        pytest.param(PathMatch(template="/o/{a}/i/{b}"), "/o/1/x/2", False, id="literal between params"),
        pytest.param(PathMatch(regex=r"/v[0-9]+/.*"), "/v2/users", True, id="regex"),
        pytest.param(PathMatch(regex=r"/v[0-9]+/.*"), "/x/v2/users", False, id="regex is a full match"),
    ],
)
def test_path_matcher(path_match: PathMatch, path: str, expected: bool) -> None:
    rules = compiled(Rule(name="r", path=path_match, split=EVERYONE))
    assert (route(rules, facts(path=path, gray_id="u")) == "canary") is expected


@pytest.mark.parametrize(
    "condition, headers, expected",
    [
        pytest.param(ValueCondition("X-Tier", exact="gold"), {"X-Tier": "gold"}, True, id="exact"),
        pytest.param(ValueCondition("X-Tier", exact="gold"), {"x-tier": " gold "}, True, id="name case, value trimmed"),
        pytest.param(ValueCondition("X-Tier", exact="gold"), {"X-Tier": "Gold"}, False, id="exact is case-sensitive"),
        pytest.param(ValueCondition("X-Tier", prefix="go"), {"X-Tier": "gold"}, True, id="prefix"),
        pytest.param(ValueCondition("X-Tier", prefix="go"), {"X-Tier": "silver"}, False, id="prefix no"),
        pytest.param(ValueCondition("X-Tier", regex="g.l[a-z]"), {"X-Tier": "gold"}, True, id="regex"),
        pytest.param(ValueCondition("X-Tier", regex="g.l"), {"X-Tier": "gold"}, False, id="regex full match"),
        pytest.param(ValueCondition("X-Tier", present=True), {"X-Tier": ""}, True, id="present even empty"),
        pytest.param(ValueCondition("X-Tier", present=True), {}, False, id="present, absent"),
        pytest.param(ValueCondition("X-Tier", present=False), {}, True, id="absent"),
        pytest.param(ValueCondition("X-Tier", exact="gold"), {}, False, id="exact, absent"),
        pytest.param(ValueCondition("Content-Type", prefix="application/json"),
                     {"Content-Type": "application/json; charset=utf-8"}, True, id="content-type"),
    ],
)
def test_header_matcher(condition: ValueCondition, headers: dict[str, str], expected: bool) -> None:
    rules = compiled(Rule(name="r", headers=(condition,), split=EVERYONE))
    assert (route(rules, facts(headers=headers, gray_id="u")) == "canary") is expected


@pytest.mark.parametrize(
    "wanted, sent, expected",
    [
        pytest.param("^2", "2.3.1", True, id="caret contains"),
        pytest.param("^2", "3.0.0", False, id="caret excludes next major"),
        pytest.param(">=1.4 <2", "1.9.9", True, id="comparators"),
        pytest.param("^2", "^2", False, id="request range is not one version"),
        pytest.param("^2", None, False, id="no api version"),
    ],
)
def test_api_version_matcher(wanted: str, sent: str | None, expected: bool) -> None:
    rules = compiled(Rule(name="r", api_version=wanted, split=EVERYONE))
    api = VersionContext(sent) if sent is not None else None
    assert (route(rules, facts(gray_id="u", api_version=api)) == "canary") is expected


def test_when_expression() -> None:
    rules = compiled(Rule(name="r", when='header["X-Tier"] == "gold" && method == "POST"', split=EVERYONE))
    environ = create_environ("/", method="POST", headers={"X-Tier": "gold"})
    ctx = GrayContext(request_id="r", gray_id="u", gray_key=b"u")
    assert route(rules, RequestFacts(environ, ctx)) == "canary"
    environ = create_environ("/", method="GET", headers={"X-Tier": "gold"})
    assert route(rules, RequestFacts(environ, ctx)) == "stable"


def test_matchers_compose() -> None:
    rules = compiled(
        Rule(
            name="r",
            hosts=("*.example.com",),
            path=PathMatch(prefix="/api"),
            headers=(ValueCondition("X-Tier", exact="gold"),),
            query=(ValueCondition("beta", present=True),),
            split=EVERYONE,
        )
    )
    good = dict(path="/api/x", headers={"X-Tier": "gold"}, query="beta=1", gray_id="u")
    assert route(rules, facts(**good)) == "canary"
    for broken in ({"path": "/web"}, {"headers": {}}, {"query": ""}, {"host": "other.org"}):
        assert route(rules, facts(**{**good, **broken})) == "stable", broken


def test_first_matching_rule_in_declared_order_wins() -> None:
    rules = compiled(
        Rule(name="specific", path=PathMatch(prefix="/api/orders"), split=(Backend("v2", 100),)),
        Rule(name="general", path=PathMatch(prefix="/api"), split=EVERYONE),
        Rule(name="late-specific", path=PathMatch(template="/api/users/{id}"), split=(Backend("v2", 100),)),
    )
    assert rules.decide(facts("/api/orders/1", gray_id="u")) == ("v2", None, "specific", "weight")
    assert rules.decide(facts("/api/users/1", gray_id="u")).rule == "general"  # type: ignore[union-attr]


# --- compiled colours -------------------------------------------------------


def test_default_colours_only_for_existing_clusters() -> None:
    rules = compiled(clusters={"stable": Cluster(), "new": Cluster()})
    assert rules.colors == {"stable": "stable"}


# --- scale --------------------------------------------------------------------


def test_candidates_do_not_grow_with_rule_count() -> None:
    """With 10,000 host/prefix rules a request only visits its own few."""
    many = [
        Rule(name=f"r{i}", hosts=(f"h{i}.example.com",), path=PathMatch(prefix=f"/p{i}"), split=EVERYONE)
        for i in range(10_000)
    ]
    rules = compiled(*many)
    assert rules.candidates(facts("/p7777/x", host="h7777.example.com")) == [7777]
    assert rules.candidates(facts("/p1/x", host="h7777.example.com")) == []
    assert rules.decide(facts("/p7777/x", host="h7777.example.com", gray_id="u")).rule == "r7777"  # type: ignore[union-attr]
    assert route(rules, facts("/p1/x", host="h7777.example.com", gray_id="u")) == "stable"


def test_remembered_candidates_stay_bounded_and_decide_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host/path memory holds at most RECENT_PATHS pairs and never changes a decision."""
    import graywsgi.rules.routing as routing

    monkeypatch.setattr(routing, "RECENT_PATHS", 8)
    ruleset = (
        Rule(name="orders", path=PathMatch(prefix="/orders"), split=EVERYONE),
        Rule(name="items", path=PathMatch(template="/items/{id}"), split=(Backend("canary", 50),)),
    )
    remembering = compiled(*ruleset)
    for n in range(40):
        for path in (f"/orders/{n}", f"/items/{n}", f"/other/{n}", "/orders"):
            request = facts(path, gray_id=f"user-{n}")
            fresh = compiled(*ruleset)  # nothing remembered yet
            assert remembering.decide(request) == fresh.decide(request), path
            assert len(remembering._recent) <= 8


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ruleset, location, fragment",
    [
        pytest.param(RuleSet(clusters={}), ("clusters",), "at least one", id="no clusters"),
        pytest.param(RuleSet(clusters=CLUSTERS, default_cluster="nope"), ("default_cluster",), "unknown cluster",
                     id="unknown default"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a"), Rule("a"))), ("rules", 1, "name"), "duplicate",
                     id="duplicate names"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", split=(Backend("x", 1),)),)),
                     ("rules", 0, "split", 0, "cluster"), "unknown cluster", id="unknown split cluster"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", split=(Backend("canary", 60), Backend("v2", 50))),)),
                     ("rules", 0, "split"), "110", id="weights over 100"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", factors={"host": 0.5}),)),
                     ("rules", 0, "factors", "host"), "does not match on host", id="factor without dimension"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", headers=(ValueCondition("X", regex="("),)),)),
                     ("rules", 0, "match", "headers", 0, "regex"), "invalid regular expression", id="bad regex"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", headers=(ValueCondition("X"),)),)),
                     ("rules", 0, "match", "headers", 0), "exactly one", id="condition without form"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", when="header[1] =="),)),
                     ("rules", 0, "match", "when"), "expression", id="bad expression"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", path=PathMatch(template="/a/x{id}")),)),
                     ("rules", 0, "match", "path", "template"), "whole segment", id="partial template segment"),
        pytest.param(RuleSet(clusters=CLUSTERS, rules=(Rule("a", hosts=("bad host",)),)),
                     ("rules", 0, "match", "host", 0), "not a host", id="bad host"),
        pytest.param(RuleSet(clusters=CLUSTERS, colors={"x": "nope"}), ("colors", "x"), "unknown cluster",
                     id="colour to unknown cluster"),
        pytest.param(RuleSet(clusters=CLUSTERS, key=KeySpec("cookie")), ("key", "name"), "needs a name",
                     id="cookie key without name"),
    ],
)
def test_rule_errors_name_their_location(ruleset: RuleSet, location: tuple[t.Any, ...], fragment: str) -> None:
    with pytest.raises(RuleError) as excinfo:
        CompiledRules(ruleset)
    assert excinfo.value.location == location
    assert fragment in str(excinfo.value)


def test_decide_for_helper() -> None:
    rules = compiled(Rule(name="r", split=(Backend("canary", 15),)))
    assert rules.decide_for(gray_id="user-1").route == "canary"  # type: ignore[union-attr]


def test_bad_upstream_url_is_a_rule_error() -> None:
    with pytest.raises(RuleError) as excinfo:
        CompiledRules(RuleSet(clusters={"stable": Cluster(upstream="http://127.0.0.1:99999")}))
    assert excinfo.value.location == ("clusters", "stable", "upstream")
