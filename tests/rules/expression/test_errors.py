"""Tests of graywsgi.rules.expression.errors: ExpressionError's message, type and pickling."""

from __future__ import annotations

import pickle

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError


def test_error_message_format() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression('header["a"] == ')
    assert str(caught.value) == "expression 'header[\"a\"] == ': column 15: expected a value, found end of input"
    assert caught.value.reason == "expected a value, found end of input"


def test_error_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Expression("path ==")
    with pytest.raises(ValueError):
        Expression("path ==")


def test_error_on_a_later_line() -> None:
    source = 'path == "/"\n  && hots == "a"'
    with pytest.raises(ExpressionError) as caught:
        Expression(source)
    assert ": line 2, column 6: unknown name 'hots'" in str(caught.value)
    assert caught.value.position == source.index("hots")


def test_error_pickles() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression("path ==")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (type(copy), str(copy), copy.position) == (ExpressionError, str(caught.value), 7)
