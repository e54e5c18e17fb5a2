"""Tests of graywsgi.rules.expression.limits: nesting, length, list, pattern and subject limits."""

from __future__ import annotations

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.facts import MappingFacts
from graywsgi.rules.expression.limits import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    MAX_MATCH_SUBJECT,
    MAX_PATTERN_LENGTH,
    MAX_SOURCE_LENGTH,
)
from tests.rules.expression.helpers import REQUEST, nested


@pytest.mark.parametrize(
    "length, expected",
    [
        pytest.param(MAX_MATCH_SUBJECT, True, id="at the cap"),
        pytest.param(MAX_MATCH_SUBJECT + 1, False, id="over the cap"),
    ],
)
def test_matches_subject_cap(length: int, expected: bool) -> None:
    facts = MappingFacts(headers={"X-Long": "a" * length})
    assert Expression('header["X-Long"].matches("a")').evaluate(facts) is expected
    assert Expression('header["X-Long"].contains("a")').evaluate(facts) is True


@pytest.mark.parametrize("kind", ["parentheses", "negations", "methods"])
def test_nesting_up_to_the_limit_compiles(kind: str) -> None:
    Expression(nested(kind, MAX_DEPTH))


@pytest.mark.parametrize(
    "kind, levels",
    [
        pytest.param("parentheses", MAX_DEPTH + 1, id="parentheses, one too many"),
        pytest.param("negations", MAX_DEPTH + 1, id="negations, one too many"),
        pytest.param("methods", MAX_DEPTH + 1, id="methods, one too many"),
        pytest.param("parentheses", 2000, id="parentheses, far too many"),
        pytest.param("negations", 4000, id="negations, far too many"),
        pytest.param("methods", 500, id="methods, far too many"),
    ],
)
def test_nesting_over_the_limit_is_an_expression_error(kind: str, levels: int) -> None:
    with pytest.raises(ExpressionError, match="nesting is deeper than 64 levels"):
        Expression(nested(kind, levels))


def test_nesting_counts_parentheses_negations_and_methods_together() -> None:
    inner = "(!" * 16 + "path" + ".lower()" * 32 + ")" * 16
    Expression(inner)  # 16 + 16 + 32 = 64
    with pytest.raises(ExpressionError, match="nesting"):
        Expression("!" + inner)


@pytest.mark.parametrize(
    "source, column",
    [
        pytest.param("(path" + ".lower()" * 40 + ")" + ".lower()" * 23, 0, id="methods on a group, at the limit"),
        pytest.param("(path" + ".lower()" * 40 + ")" + ".lower()" * 24, 512, id="methods on a group, over"),
        pytest.param("(path" + ".lower()" * 64 + ")", 1, id="group around 64 methods"),
        pytest.param("!(path" + ".lower()" * 62 + ")", 0, id="negated group around 62 methods, at the limit"),
        pytest.param("!(path" + ".lower()" * 63 + ")", 1, id="negated group around 63 methods"),
        pytest.param("(" * 32 + "path" + ")" * 32 + ".lower()" * 32, 0, id="methods after 32 groups, at the limit"),
        pytest.param("(" * 32 + "path" + ")" * 32 + ".lower()" * 33, 326, id="methods after 32 groups, over"),
    ],
)
def test_nesting_counts_levels_around_each_value(source: str, column: int) -> None:
    """A group's height carries into the methods called on it; 0 means it compiles."""
    if column == 0:
        Expression(source)
        return
    with pytest.raises(ExpressionError, match="nesting is deeper") as caught:
        Expression(source)
    assert caught.value.position == column - 1


def test_parenthesised_nesting_evaluates() -> None:
    assert Expression(nested("parentheses", MAX_DEPTH)).evaluate(REQUEST) is False
    assert Expression(nested("negations", MAX_DEPTH)).evaluate(REQUEST) is True  # an even count of '!'
    assert Expression(nested("negations", MAX_DEPTH - 1)).evaluate(REQUEST) is False


def test_long_chains_of_operators_do_not_nest() -> None:
    source = " || ".join(['path == "x"'] * 250)
    assert len(source) <= MAX_SOURCE_LENGTH
    expression = Expression(source)
    assert expression.evaluate(MappingFacts({"path": "x"})) is True
    assert expression.evaluate(MappingFacts({"path": "y"})) is False


def test_source_length_limit() -> None:
    at_limit = 'path == "' + "a" * (MAX_SOURCE_LENGTH - 10) + '"'
    assert len(at_limit) == MAX_SOURCE_LENGTH
    Expression(at_limit)
    with pytest.raises(ExpressionError, match="at most 4096 characters, this one 4097") as caught:
        Expression(at_limit + " ")
    assert caught.value.position == MAX_SOURCE_LENGTH
    assert len(str(caught.value)) < 400  # the message quotes an excerpt, not the whole source


def test_list_item_limit() -> None:
    items = ", ".join(["1"] * MAX_LIST_ITEMS)
    assert Expression(f"path.size() in [{items}]").evaluate(MappingFacts({"path": "x"})) is True
    with pytest.raises(ExpressionError, match="at most 1000 items") as caught:
        Expression(f"path.size() in [{items}, 2]")
    assert caught.value.position == len(f"path.size() in [{items}, ")


def test_large_list_membership() -> None:
    items = ",".join(f'"{chr(0x100 + i)}"' for i in range(MAX_LIST_ITEMS))
    expression = Expression(f"tenant in [{items}]")
    assert expression.evaluate(MappingFacts({"tenant": chr(0x100 + 999)})) is True
    assert expression.evaluate(MappingFacts({"tenant": chr(0x100 + 1000)})) is False


def test_pattern_length_limit() -> None:
    Expression(f'path.matches("{"a" * MAX_PATTERN_LENGTH}")')
    with pytest.raises(ExpressionError, match="at most 512 characters, this one 513") as caught:
        Expression(f'path.matches("{"a" * (MAX_PATTERN_LENGTH + 1)}")')
    assert caught.value.position == len("path.matches(")


def test_documented_nesting_example_is_four_deep() -> None:
    inner = '!(path.lower().startsWith("/a"))'
    Expression("(" * (MAX_DEPTH - 4) + inner + ")" * (MAX_DEPTH - 4))
    with pytest.raises(ExpressionError, match="nesting"):
        Expression("(" * (MAX_DEPTH - 3) + inner + ")" * (MAX_DEPTH - 3))
