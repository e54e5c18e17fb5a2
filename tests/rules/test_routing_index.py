"""The routing index by header, query and cookie values, and the bounded memory of a rule set.

(graywsgi.rules.routing, "Scale" and "Memory".) The index must never change a
decision: every test that compares compares against the same rule set with
the value index switched off, which checks each rule in declared order.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
import typing as t

import pytest
from werkzeug.test import create_environ

import graywsgi.rules.routing as routing
from graywsgi.core.context import GrayContext
from graywsgi.rules.routing import CompiledRules, RequestFacts
from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet, ValueCondition

EVERYONE = (Backend("canary", 100),)


def compiled(*rules: Rule) -> CompiledRules:
    return CompiledRules(RuleSet(clusters={"stable": Cluster(), "canary": Cluster()}, rules=rules))


def unindexed(*rules: Rule, monkeypatch: pytest.MonkeyPatch) -> CompiledRules:
    """The same rules with no value index: every rule is checked in order."""
    with monkeypatch.context() as patch:
        patch.setattr(routing, "_value_key", lambda rule: None)
        return compiled(*rules)


def facts(path: str = "/", host: str = "shop.example.com", headers: dict[str, str] | None = None,
          query: str = "", gray_id: str | None = "user-1") -> RequestFacts:
    environ = create_environ(path, base_url=f"http://{host}/", headers=headers or {}, query_string=query)
    context = GrayContext(request_id="r", gray_id=gray_id,
                          gray_key=gray_id.encode("utf-8") if gray_id is not None else None)
    return RequestFacts(environ, context)


def rule_name(rules: CompiledRules, request: RequestFacts) -> str | None:
    decision = rules.decide(request)
    assert decision is not None
    return decision.rule


@pytest.mark.parametrize("dimension", ["headers", "query", "cookies"])
def test_ten_thousand_value_rules_leave_one_candidate(dimension: str) -> None:
    """10,000 rules on one header (query, cookie) name: a request's candidates are its own rule only."""
    rules = compiled(*(
        Rule(name=f"r{i}", split=EVERYONE, **{dimension: (ValueCondition("x-team", exact=f"t{i}"),)})
        for i in range(10_000)
    ))
    request = {
        "headers": lambda value: facts(headers={"X-Team": value}),
        "query": lambda value: facts(query=f"x-team={value}"),
        "cookies": lambda value: facts(headers={"Cookie": f"x-team={value}"}),
    }[dimension]
    assert rules.candidates(request("t7777")) == [7777]
    assert rule_name(rules, request("t7777")) == "r7777"
    assert rules.candidates(request("t10000")) == []
    assert rules.candidates(facts()) == []
    assert rule_name(rules, facts()) is None  # no rule: the default cluster


def test_header_names_are_matched_without_regard_to_case() -> None:
    rules = compiled(
        Rule(name="upper", headers=(ValueCondition("X-Team", exact="a"),), split=EVERYONE),
        Rule(name="lower", headers=(ValueCondition("x-team", exact="b"),), split=EVERYONE),
    )
    assert rule_name(rules, facts(headers={"x-TEAM": "a"})) == "upper"
    assert rule_name(rules, facts(headers={"X-Team": "b"})) == "lower"
    assert rule_name(rules, facts(headers={"X-Team": "A"})) is None  # values are exact


def test_declared_order_holds_between_indexed_and_other_rules() -> None:
    """The first rule in declared order wins, whichever way each rule is found."""
    rules = compiled(
        Rule(name="beta-header", headers=(ValueCondition("X-Beta", exact="1"),), split=EVERYONE),
        Rule(name="orders", path=PathMatch(prefix="/orders"), split=EVERYONE),
        Rule(name="staff-on-orders", path=PathMatch(prefix="/orders"),
             headers=(ValueCondition("X-Staff", exact="yes"),), split=EVERYONE),
        Rule(name="staff", headers=(ValueCondition("X-Staff", exact="yes"),), split=EVERYONE),
    )
    assert rule_name(rules, facts("/orders/1", headers={"X-Beta": "1", "X-Staff": "yes"})) == "beta-header"
    assert rule_name(rules, facts("/orders/1", headers={"X-Staff": "yes"})) == "orders"
    assert rule_name(rules, facts("/items/1", headers={"X-Staff": "yes"})) == "staff"
    assert rules.candidates(facts("/orders/1", headers={"X-Staff": "yes"})) == [1, 2, 3]


def test_only_the_first_exact_condition_indexes_and_every_condition_still_holds() -> None:
    rules = compiled(
        Rule(name="both", headers=(ValueCondition("X-Team", exact="a"), ValueCondition("X-Env", exact="prod")),
             query=(ValueCondition("q", exact="1"),), split=EVERYONE),
    )
    assert rule_name(rules, facts(headers={"X-Team": "a", "X-Env": "prod"}, query="q=1")) == "both"
    assert rule_name(rules, facts(headers={"X-Team": "a", "X-Env": "dev"}, query="q=1")) is None
    assert rule_name(rules, facts(headers={"X-Team": "a", "X-Env": "prod"})) is None


def _random_rule(rng: random.Random, i: int) -> Rule:
    """A rule of a random shape over a small alphabet, so that requests often match."""
    options: dict[str, t.Any] = {}
    if rng.random() < 0.4:
        options["hosts"] = (rng.choice(["a.example.com", "b.example.com", "*.example.com"]),)
    shape = rng.random()
    if shape < 0.3:
        options["path"] = PathMatch(prefix=rng.choice(["/orders", "/items", "/"]))
    elif shape < 0.5:
        options["path"] = PathMatch(template=rng.choice(["/orders/{id}", "/items/{id}/x"]))
    for dimension in ("headers", "query", "cookies"):
        if rng.random() < 0.4:
            name = rng.choice(["team", "Team", "env"]) if dimension == "headers" else rng.choice(["team", "env"])
            form = rng.choice(["exact", "exact", "prefix", "present"])
            value: t.Any = {"exact": rng.choice(["a", "b", "c"]), "prefix": rng.choice(["a", "b"]),
                            "present": rng.choice([True, False])}[form]
            options[dimension] = (ValueCondition(name, **{form: value}),)
    return Rule(name=f"r{i}", split=(Backend("canary", rng.choice([0, 50, 100])),), **options)


def test_the_value_index_never_changes_a_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random rule sets of every shape, random requests: the same decision with and without the index."""
    rng = random.Random(1906)
    for _ in range(30):
        ruleset = [_random_rule(rng, i) for i in range(rng.randint(1, 25))]
        indexed, plain = compiled(*ruleset), unindexed(*ruleset, monkeypatch=monkeypatch)
        for n in range(60):
            values = {name: rng.choice(["a", "b", "c", "ab"]) for name in ("team", "env") if rng.random() < 0.7}
            request = dict(
                path=rng.choice(["/", "/orders", "/orders/7", "/items/7/x", "/items"]),
                host=rng.choice(["a.example.com", "b.example.com", "c.example.com", "a.example.com:8080"]),
                headers={**{name.title(): value for name, value in values.items()},
                         "Cookie": "; ".join(f"{k}={v}" for k, v in values.items())},
                query="&".join(f"{k}={v}" for k, v in values.items()),
                gray_id=f"user-{n}",
            )
            for _twice in range(2):  # the second time from the remembered host/path answer
                assert indexed.decide(facts(**request)) == plain.decide(facts(**request)), (ruleset, request)


# --- memory ---------------------------------------------------------------------


def test_long_answers_and_long_keys_are_not_remembered() -> None:
    """An answer of more than RECENT_CANDIDATES rules, or a pair over RECENT_KEY_CHARS, is not kept."""
    many = compiled(*(Rule(name=f"r{i}", headers=(ValueCondition("x", prefix=f"{i}"),), split=EVERYONE)
                      for i in range(routing.RECENT_CANDIDATES + 1)))
    many.decide(facts("/a"))
    assert many._recent == {}
    few = compiled(Rule(name="r", headers=(ValueCondition("x", prefix="1"),), split=EVERYONE))
    few.decide(facts("/" + "p" * routing.RECENT_KEY_CHARS))
    assert few._recent == {}
    few.decide(facts("/p"))
    assert list(few._recent) == [("shop.example.com", "/p")]


def test_routing_memory_stays_bounded_under_100000_distinct_requests() -> None:
    """10,000 header rules; 100,000 distinct hosts, paths and header values: the rule set's memory
    stays under the documented 16 MiB for all of routing (docs/configuration.md)."""
    rules = compiled(*(
        Rule(name=f"r{i}", headers=(ValueCondition("X-Team", exact=f"t{i}"),), split=(Backend("canary", 50),))
        for i in range(5_000)
    ), *(
        Rule(name=f"p{i}", hosts=(f"h{i}.example.com",), path=PathMatch(prefix=f"/p{i}"), split=EVERYONE)
        for i in range(5_000)
    ), Rule(name="slow", headers=(ValueCondition("X-Slow", present=True),), split=EVERYONE))
    environ = create_environ("/", base_url="http://x.example.com/")
    context = GrayContext(request_id="r", gray_id="u", gray_key=b"u")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(100_000):
            request = dict(environ)
            request["HTTP_HOST"] = f"h{n % 7_000}.example.com" if n % 2 else f"host-{n}.example.org"
            request["PATH_INFO"] = f"/p{n % 7_000}/{n}/" + "x" * (n % 300)
            request["HTTP_X_TEAM"] = f"t{n}"
            rules.decide(RequestFacts(request, context))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0 < len(rules._recent) <= routing.RECENT_PATHS
    assert held <= 16 * 1024 * 1024, f"routing holds {held / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "path, segments",
    [("/", []), ("", []), ("/orders", ["orders"]), ("/orders/", ["orders"]), ("//orders//7", ["orders", "7"]),
     ("/a/b/c", ["a", "b", "c"])],
)
def test_path_segments_ignore_empty_ones(path: str, segments: list[str]) -> None:
    from graywsgi.rules.routing_index import _segments

    assert _segments(path) == segments
