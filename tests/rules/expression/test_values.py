"""Tests of graywsgi.rules.expression.values: numeric strings and values of unexpected types."""

from __future__ import annotations

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.facts import MappingFacts
from tests.rules.expression.helpers import ConstantFacts


@pytest.mark.parametrize(
    "value, literal, equal",
    [
        pytest.param("42", "42", True, id="integer"),
        pytest.param("42.0", "42", True, id="decimal equals integer"),
        pytest.param("-1.5", "-1.5", True, id="negative decimal"),
        pytest.param("007", "7", True, id="leading zeros"),
        pytest.param("1" * 64, "1" * 64, True, id="64 characters"),
        pytest.param(" 42", "42", False, id="leading space"),
        pytest.param("42 ", "42", False, id="trailing space"),
        pytest.param("+42", "42", False, id="plus sign"),
        pytest.param(".5", "0.5", False, id="leading dot"),
        pytest.param("5.", "5", False, id="trailing dot"),
        pytest.param("1e3", "1000", False, id="exponent"),
        pytest.param("1_000", "1000", False, id="underscore"),
        pytest.param("nan", "0", False, id="nan"),
        pytest.param("inf", "0", False, id="inf"),
        pytest.param("\u0664\u0662", "42", False, id="arabic-indic digits"),
        pytest.param("0x2a", "42", False, id="hex"),
        pytest.param("", "0", False, id="empty"),
        pytest.param("-", "0", False, id="lone minus"),
    ],
)
def test_numeric_strings(value: str, literal: str, equal: bool) -> None:
    facts = MappingFacts(headers={"X-N": value})
    assert Expression(f'header["X-N"] == {literal}').evaluate(facts) is equal
    assert Expression(f'header["X-N"] != {literal}').evaluate(facts) is not equal
    assert Expression(f'header["X-N"] in [{literal}]').evaluate(facts) is equal


class OddValue:
    """Neither a string nor None, and hostile to comparison."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    def __hash__(self) -> int:
        raise RuntimeError("hashed")

    def __str__(self) -> str:
        raise RuntimeError("converted")


class HostileString(str):
    def __str__(self) -> str:
        raise RuntimeError("converted")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __hash__ = str.__hash__


ROBUSTNESS_SOURCES = [
    'header["a"] == "x"',
    'header["a"] != "x"',
    'header["a"] == 1',
    'header["a"] != 1',
    'header["a"] < 1',
    'header["a"] >= "x"',
    'header["a"] == null',
    'header["a"] == header["b"]',
    'header["a"] != header["b"]',
    'header["a"] < header["b"]',
    'header["a"] in ["x", "y"]',
    'header["a"] in [1, null, true]',
    'header["a"]',
    '!header["a"]',
    'header["a"].startsWith("x")',
    'header["a"].endsWith("x")',
    'header["a"].contains("x")',
    'header["a"].matches("x")',
    'header["a"].lower() == "x"',
    'header["a"].upper() != "x"',
    'header["a"].size() > 0',
    'header["a"].lower()',
    'path == "x" || cookie["c"] in ["1"]',
]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(5, id="int"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(b"x", id="bytes"),
        pytest.param(["x"], id="list"),
        pytest.param(OddValue(), id="hostile object"),
        pytest.param(float("nan"), id="nan"),
        pytest.param("x" * 100_000, id="huge string"),
        pytest.param("\x00\r\n\udcff", id="control characters and a lone surrogate"),
    ],
)
def test_foreign_facts_values_never_raise(value: object) -> None:
    facts = ConstantFacts(value)
    for source in ROBUSTNESS_SOURCES:
        assert Expression(source).evaluate(facts) in (True, False), source


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param('header["a"] == "x"', False, id="== with no value"),
        pytest.param('header["a"] != "x"', False, id="!= with no value"),
        pytest.param('header["a"] == 5', False, id="int is not a number here"),
        pytest.param('header["a"] == null', False, id="not null either"),
        pytest.param('header["a"] in [5, null]', False, id="in nothing"),
        pytest.param('header["a"]', False, id="not present"),
        pytest.param('!header["a"].startsWith("5")', True, id="method on no value"),
    ],
)
def test_non_string_facts_values_are_no_value(source: str, expected: bool) -> None:
    assert Expression(source).evaluate(ConstantFacts(5)) is expected


@pytest.mark.parametrize(
    "source",
    [
        pytest.param('header["a"] == "gold"', id="equals"),
        pytest.param('header["a"] != "silver"', id="not equal"),
        pytest.param('header["a"] in ["gold"]', id="in"),
        pytest.param('header["a"].startsWith("go")', id="method"),
        pytest.param('header["a"].upper() == "GOLD"', id="method result"),
        pytest.param('header["a"] < "h"', id="ordering"),
        pytest.param('header["a"] == header["a"]', id="two reads"),
        pytest.param('header["a"]', id="presence"),
    ],
)
def test_str_subclass_values_are_read_as_plain_strings(source: str) -> None:
    assert Expression(source).evaluate(ConstantFacts(HostileString("gold"))) is True
