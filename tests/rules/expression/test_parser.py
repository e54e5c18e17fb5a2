"""Tests of graywsgi.rules.expression.parser: names, syntax and the errors of compiling a source."""

from __future__ import annotations

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.facts import MappingFacts


@pytest.mark.parametrize("name", sorted(Expression.ATTRIBUTES))
def test_every_attribute_is_read_by_name(name: str) -> None:
    facts = MappingFacts({name: "x"})
    assert Expression(f'{name} == "x"').evaluate(facts) is True
    assert Expression(f'{name} == "x"').evaluate(MappingFacts()) is False


def test_attribute_names() -> None:
    assert Expression.ATTRIBUTES == frozenset(
        {
            "host",
            "path",
            "method",
            "scheme",
            "gray_id",
            "env",
            "version",
            "api_version",
            "canary_id",
            "traffic_color",
            "tenant",
            "role",
            "remote_addr",
        }
    )


@pytest.mark.parametrize(
    "source, column, fragment",
    [
        pytest.param("", 1, "expected a value, found end of input", id="empty"),
        pytest.param("   ", 1, "expected a value, found end of input", id="only whitespace"),
        pytest.param('header["a"] == ', 15, "expected a value, found end of input", id="missing right side"),
        pytest.param('header["a"] ==', 15, "expected a value, found end of input", id="missing right side, no space"),
        pytest.param('hots == "a"', 1, "unknown name 'hots' (did you mean 'host'?)", id="typo in attribute"),
        pytest.param('user == "a"', 1, "attributes: api_version, canary_id, env", id="unknown attribute lists names"),
        pytest.param('Path == "a"', 1, "did you mean 'path'?", id="wrong case attribute"),
        pytest.param('headers["a"]', 1, "did you mean 'header'?", id="typo in lookup"),
        pytest.param(
            'path.startswith("/")', 6, "unknown method 'startswith' (did you mean 'startsWith'?)", id="method case"
        ),
        pytest.param("path.length()", 6, "methods: contains, endsWith, lower", id="unknown method lists methods"),
        pytest.param("path and host", 6, "'and' is not an operator; use '&&'", id="and"),
        pytest.param("path or host", 6, "use '||'", id="or"),
        pytest.param("not path", 1, "use '!'", id="not"),
        pytest.param("path AND host", 6, "use '&&'", id="AND"),
        pytest.param('path == True', 9, "unknown name 'True'; write 'true'", id="Python True"),
        pytest.param('path == None', 9, "write 'null'", id="Python None"),
        pytest.param('path = "/"', 6, "use '==' to compare", id="single ="),
        pytest.param('path === "/"', 6, "'===' is not an operator", id="triple ="),
        pytest.param("path & host", 6, "use '&&'", id="single &"),
        pytest.param("path | host", 6, "use '||'", id="single |"),
        pytest.param('path == "a', 9, "string is not closed", id="unclosed string"),
        pytest.param('path == "a\nb"', 9, "string is not closed", id="line break in string"),
        pytest.param('path == "a\\qb"', 11, "unknown escape '\\q'", id="unknown escape"),
        pytest.param('path == "a\\x41"', 11, "unknown escape '\\x'", id="hex escape is not supported"),
        pytest.param('path == "\\u12g4"', 10, "\\u must be followed by 4 hex digits", id="bad unicode escape"),
        pytest.param('path == "\\ud800"', 10, "surrogate", id="surrogate escape"),
        pytest.param('path == "a\x01"', 11, "control character", id="control character in string"),
        pytest.param("path == 42abc", 9, "invalid number '42abc'", id="number run into a name"),
        pytest.param("path == " + "1" * 65, 9, "at most 64 characters", id="number too long"),
        pytest.param("path == - 1", 9, "there is no arithmetic", id="detached minus"),
        pytest.param("path.size() > 1 + 2", 17, "unexpected character '+'", id="plus"),
        pytest.param("path @ host", 6, "unexpected character '@'", id="unexpected character"),
        pytest.param("path\u200b", 5, "unexpected character '\\u200b'", id="invisible character"),
        pytest.param("header[XTier]", 8, "must be a string literal", id="unquoted key"),
        pytest.param('header["X-Tier"', 16, "expected ']'", id="unclosed lookup"),
        pytest.param("header.tier", 7, 'header needs a key in brackets, e.g. header["X-Tier"]', id="dotted lookup"),
        pytest.param('cookie[""]', 8, "is empty", id="empty key"),
        pytest.param("query", 6, "query needs a key", id="bare lookup name"),
        pytest.param("size(path) > 1", 1, "size() is a method; write value.size(...)", id="method called as function"),
        pytest.param('has(header["a"])', 1, "there are no functions", id="function call"),
        pytest.param("path.size", 10, "expected '(' after 'size'", id="method without parentheses"),
        pytest.param("path.lower(1)", 12, "lower() takes no arguments", id="argument to lower"),
        pytest.param("path.startsWith()", 17, "takes one string literal, found ')'", id="no argument"),
        pytest.param(
            "path.startsWith(host)", 17, "takes one string literal, found name 'host'", id="attribute argument"
        ),
        pytest.param('path.startsWith("a", "b")', 20, "takes one argument: expected ')'", id="two arguments"),
        pytest.param("path.", 6, "expected a method name after '.', found end of input", id="dangling dot"),
        pytest.param('path.matches("(")', 14, "invalid regular expression", id="bad regex"),
        pytest.param("path.size()", 1, "a number is not a condition", id="number as condition"),
        pytest.param("42", 1, "a number is not a condition", id="number literal as condition"),
        pytest.param("null", 1, "null is not a condition", id="null as condition"),
        pytest.param('"yes"', 1, "a string literal is not a condition", id="string literal as condition"),
        pytest.param('path == "/" && 1', 16, "a number is not a condition", id="number operand of &&"),
        pytest.param("42.size() > 1", 4, "size() applies to strings, not to a number", id="method on number"),
        pytest.param("true.lower()", 6, "lower() applies to strings, not to a boolean", id="method on boolean"),
        pytest.param("null.size() == 0", 6, "size() applies to strings, not to null", id="method on null literal"),
        pytest.param("path.size().lower()", 13, "not to a number", id="method on size"),
        pytest.param('path.startsWith("/").lower()', 22, "not to a boolean", id="method on boolean result"),
        pytest.param('header["X-Beta"] == true', 21, 'write "true" in quotes', id="string compared with true"),
        pytest.param('false != cookie["b"]', 1, 'write "false" in quotes', id="false compared with string"),
        pytest.param("path == 1 == 2", 11, "comparisons do not chain", id="chained comparison"),
        pytest.param('path in ["a"] in [true]', 15, "'in' does not chain", id="chained in"),
        pytest.param("path in path", 9, "'in' must be followed by a list literal", id="in without list"),
        pytest.param('path in ["a", path]', 15, "list items must be literals", id="attribute in list"),
        pytest.param('path in [["a"]]', 10, "lists do not nest", id="nested list"),
        pytest.param('path in ["a" "b"]', 14, "expected ',' or ']'", id="missing comma"),
        pytest.param('path in ["a",,]', 14, "list items must be literals", id="double comma"),
        pytest.param('["a"] == path', 1, "a list is only allowed after 'in'", id="list on the left"),
        pytest.param("(path", 6, "expected ')' to close the '(' at column 1", id="unclosed parenthesis"),
        pytest.param("path)", 5, "')' has no matching '('", id="extra parenthesis"),
        pytest.param("()", 2, "expected a value, found ')'", id="empty parentheses"),
        pytest.param("path host", 6, "expected an operator or end of input, found name 'host'", id="two values"),
        pytest.param("path == in", 9, "expected a value, found 'in'", id="in as a value"),
        pytest.param("&& path", 1, "expected a value, found '&&'", id="leading operator"),
        pytest.param("!", 2, "expected a value, found end of input", id="lone bang"),
        pytest.param('path == "' + "x" * 30 + '" "b"', 42, 'found string "b"', id="describes a string token"),
        pytest.param("path == 1 2", 11, "found number 2", id="describes a number token"),
    ],
)
def test_compile_errors(source: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression(source)
    error = caught.value
    assert fragment in str(error)
    assert f"column {column}: " in str(error)
    assert error.position == column - 1
    assert error.source == source
    assert str(error).startswith("expression ")
