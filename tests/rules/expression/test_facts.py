"""Tests of graywsgi.rules.expression.facts: the Facts protocol and MappingFacts."""

from __future__ import annotations

import typing as t

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.facts import Facts, MappingFacts
from tests.rules.expression.helpers import ConstantFacts


def test_facts_exceptions_propagate() -> None:
    class Broken(ConstantFacts):
        def header(self, name: str) -> t.Any:
            raise KeyError(name)

    with pytest.raises(KeyError):
        Expression('header["a"] == "x"').evaluate(Broken(None))


def test_a_plain_class_is_a_facts() -> None:
    class RequestFacts:
        def attribute(self, name: str) -> str | None:
            return {"path": "/"}.get(name)

        def header(self, name: str) -> str | None:
            return None

        def query(self, name: str) -> str | None:
            return None

        def cookie(self, name: str) -> str | None:
            return None

    facts: Facts = RequestFacts()
    assert Expression('path == "/"').evaluate(facts) is True


def test_mapping_facts() -> None:
    facts = MappingFacts({"path": "/"}, headers={"X-Tier": "gold"}, query={"Lang": "en"}, cookies={"Beta": "1"})
    assert facts.attribute("path") == "/"
    assert facts.attribute("host") is None
    assert facts.header("X-TIER") == facts.header("x-tier") == "gold"
    assert facts.query("Lang") == "en"
    assert facts.query("lang") is None  # only headers are case-insensitive
    assert facts.cookie("Beta") == "1"
    assert facts.cookie("beta") is None
    assert "x-tier" in repr(facts)
    empty = MappingFacts()
    assert (empty.attribute("path"), empty.header("a"), empty.query("a"), empty.cookie("a")) == (None,) * 4


def test_mapping_facts_copies_its_input() -> None:
    headers = {"X-Tier": "gold"}
    facts = MappingFacts(headers=headers)
    headers["X-Tier"] = "silver"
    assert facts.header("X-Tier") == "gold"
