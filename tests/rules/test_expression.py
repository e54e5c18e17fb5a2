from __future__ import annotations

import ast
import inspect
import pathlib
import pickle
import sys
import threading
import typing as t
from random import Random

import pytest

import graywsgi.rules.expression as expression_module
from graywsgi.errors import ConfigurationError
from graywsgi.rules.expression import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    MAX_MATCH_SUBJECT,
    MAX_PATTERN_LENGTH,
    MAX_SOURCE_LENGTH,
    Expression,
    ExpressionError,
    Facts,
    MappingFacts,
)

REQUEST = MappingFacts(
    {
        "host": "shop.example.com",
        "path": "/api/v2/items",
        "method": "GET",
        "scheme": "https",
        "env": "prod",
        "version": "1.4.0",
        "api_version": "2",
        "tenant": "acme",
        "role": "ADMIN",
        "gray_id": "u-42",
        "canary_id": "",
        "traffic_color": "Gray",
        "remote_addr": "203.0.113.7",
    },
    headers={
        "X-Tier": "gold",
        "X-Build": "120",
        "X-Ratio": "0.25",
        "X-Neg": "-3",
        "X-Empty": "",
        "X-Long-Number": "9" * 65,
        "X-Quote": "a\"b'c\\d",
        "X-Latin": "caf\xe9",
        "X-Tab": "a\tb",
    },
    query={"lang": "en", "n": "10"},
    cookies={"beta": "yes", "score": "07"},
)


@pytest.mark.parametrize(
    "source, expected",
    [
        # equality of strings
        pytest.param('header["X-Tier"] == "gold"', True, id="header equals"),
        pytest.param('header["x-tier"] == "gold"', True, id="header name is case-insensitive"),
        pytest.param('header["X-Tier"] == "Gold"', False, id="header value is case-sensitive"),
        pytest.param('header["X-Tier"] != "gold"', False, id="not equal, same"),
        pytest.param('header["X-Tier"] != "silver"', True, id="not equal, different"),
        pytest.param('"gold" == header["X-Tier"]', True, id="literal on the left"),
        pytest.param('"silver" != header["X-Tier"]', True, id="literal on the left, not equal"),
        pytest.param("header['X-Tier'] == 'gold'", True, id="single quotes"),
        pytest.param('header["X-Tier"] == header["x-TIER"]', True, id="two lookups"),
        pytest.param('method == "GET"', True, id="attribute equals"),
        pytest.param('query["lang"] == "en"', True, id="query equals"),
        pytest.param('cookie["beta"] == "yes"', True, id="cookie equals"),
        pytest.param('"a" == "a"', True, id="two literals"),
        # null
        pytest.param('header["Missing"] == null', True, id="missing equals null"),
        pytest.param('header["X-Tier"] == null', False, id="present is not null"),
        pytest.param('header["Missing"] != null', False, id="missing not-equal null"),
        pytest.param('header["X-Tier"] != null', True, id="present not-equal null"),
        pytest.param('header["Missing"] == "gold"', False, id="missing equals string"),
        pytest.param('header["Missing"] != "gold"', True, id="missing differs from string"),
        pytest.param('header["Missing"] == header["Other"]', True, id="two missing are equal"),
        pytest.param('header["Missing"] == 0', False, id="missing equals number"),
        pytest.param('header["Missing"] != 0', True, id="missing differs from number"),
        pytest.param("null == null", True, id="null literals"),
        pytest.param('query["missing"] == null && cookie["missing"] == null', True, id="missing query and cookie"),
        pytest.param('host == null', False, id="present attribute"),
        pytest.param('remote_addr != null', True, id="remote_addr present"),
        # booleans
        pytest.param("true == true", True, id="true equals true"),
        pytest.param("true != false", True, id="true differs from false"),
        pytest.param('path.startsWith("/api") == true', True, id="method result equals true"),
        pytest.param('(path == "/x") == false', True, id="comparison equals false"),
        pytest.param('(path == "/x") == null', False, id="boolean is not null"),
        pytest.param('(path == "/x") != 0', True, id="boolean differs from number 0"),
        # numbers
        pytest.param('header["X-Build"] == 120', True, id="numeric string equals integer"),
        pytest.param('header["X-Build"] == 120.0', True, id="numeric string equals decimal"),
        pytest.param('header["X-Build"] != 120', False, id="numeric string not-equal"),
        pytest.param('header["X-Build"] != 121', True, id="numeric string differs"),
        pytest.param('header["X-Build"] == "120.0"', False, id="two strings are never converted"),
        pytest.param('header["X-Tier"] == 1', False, id="non-numeric string equals number"),
        pytest.param('header["X-Tier"] != 1', True, id="non-numeric string differs from number"),
        pytest.param('header["X-Neg"] == -3', True, id="negative number"),
        pytest.param('header["X-Ratio"] == 0.25', True, id="decimal"),
        pytest.param('query["n"] == 10', True, id="query number"),
        pytest.param('cookie["score"] == 7', True, id="leading zero"),
        pytest.param('header["X-Long-Number"] != 1', True, id="over 64 digits is not a number"),
        pytest.param("1 == 1.0", True, id="number literals"),
        pytest.param("-0 == 0", True, id="negative zero"),
        pytest.param('1 == "1"', True, id="number literal and numeric string literal"),
        # ordering
        pytest.param('header["X-Build"] >= 100', True, id="numeric at least"),
        pytest.param('header["X-Build"] < 100', False, id="numeric less"),
        pytest.param('header["X-Build"] > "99"', True, id="two numeric strings order as numbers"),
        pytest.param('header["X-Build"] <= 120', True, id="at most, equal"),
        pytest.param('100 < header["X-Build"]', True, id="number on the left"),
        pytest.param('header["X-Tier"] < "silver"', True, id="strings order by code point"),
        pytest.param('header["X-Tier"] >= "gold"', True, id="string at least, equal"),
        pytest.param('header["X-Tier"] > 5', False, id="non-numeric string vs number"),
        pytest.param('header["X-Tier"] <= 5', False, id="non-numeric string vs number, other way"),
        pytest.param('header["Missing"] < 5', False, id="null is not less"),
        pytest.param('header["Missing"] >= 5', False, id="null is not more"),
        pytest.param('header["Missing"] < "a"', False, id="null vs string"),
        pytest.param('header["Missing"].size() < 5', False, id="no value is not less"),
        pytest.param('(path == "/x") < true', False, id="booleans do not order"),
        pytest.param('path.size() > 5', True, id="size greater"),
        pytest.param("path.size() == 13", True, id="size equals"),
        pytest.param('query["n"] <= 10.0', True, id="query at most"),
        pytest.param('"10" > "9"', True, id="numeric string literals order as numbers"),
        pytest.param('"b" > "a"', True, id="string literals"),
        pytest.param('version < "1.10.0"', False, id="versions are not numbers: use graywsgi.core.version"),
        pytest.param('header["X-Neg"] < 0', True, id="negative less than zero"),
        # in
        pytest.param('cookie["beta"] in ["1", "yes"]', True, id="in list"),
        pytest.param('cookie["beta"] in ["1", "no"]', False, id="not in list"),
        pytest.param('cookie["missing"] in ["1"]', False, id="missing in list"),
        pytest.param('cookie["missing"] in ["1", null]', True, id="missing in list with null"),
        pytest.param('query["n"] in [10, 20]', True, id="numeric string in numbers"),
        pytest.param('query["n"] in ["10.0"]', False, id="string in strings is not converted"),
        pytest.param('query["lang"] in [1, 2]', False, id="non-numeric string in numbers"),
        pytest.param("path.size() in [13]", True, id="number in numbers"),
        pytest.param('path.size() in ["13"]', True, id="number in numeric strings"),
        pytest.param('header["X-Tier"] in []', False, id="empty list"),
        pytest.param('header["X-Tier"] in ["gold",]', True, id="trailing comma"),
        pytest.param('(path == "/x") in [false]', True, id="boolean in list"),
        pytest.param('(path == "/x") in [0, "false"]', False, id="boolean is not 0 or a string"),
        pytest.param('role.lower() in ["admin", "owner"]', True, id="method result in list"),
        pytest.param("method in ['GET', 'HEAD']", True, id="attribute in single-quoted list"),
        pytest.param('header["Missing"].lower() in [null]', False, id="no value is in nothing"),
        pytest.param('header["X-Tier"] in ["gold"] == true', True, id="in binds tighter than =="),
        # methods
        pytest.param('path.startsWith("/api")', True, id="startsWith"),
        pytest.param('path.startsWith("/admin")', False, id="startsWith, no"),
        pytest.param('path.endsWith("items")', True, id="endsWith"),
        pytest.param('path.contains("/v2/")', True, id="contains"),
        pytest.param('path.contains("v3")', False, id="contains, no"),
        pytest.param('path.contains("")', True, id="contains empty"),
        pytest.param('header["Missing"].startsWith("a")', False, id="method on null is false"),
        pytest.param('!header["Missing"].startsWith("a")', True, id="negated method on null"),
        pytest.param('role.lower() == "admin"', True, id="lower"),
        pytest.param('header["X-Tier"].upper() == "GOLD"', True, id="upper"),
        pytest.param('traffic_color.lower().startsWith("gr")', True, id="chained methods"),
        pytest.param('"ABC".lower() == "abc"', True, id="method on a literal"),
        pytest.param('header["Missing"].lower() == null', False, id="lower of null is no value, not null"),
        pytest.param('header["Missing"].lower() != "x"', False, id="not-equal with no value is false"),
        pytest.param('!(header["Missing"].lower() == "x")', True, id="negated comparison with no value"),
        pytest.param('header["Missing"].size() == 0', False, id="size of null is no value"),
        pytest.param('header["X-Empty"].size() == 0', True, id="size of empty"),
        pytest.param('header["X-Latin"].size() == 4', True, id="size counts characters"),
        pytest.param('header["Missing"].lower().upper() == null', False, id="no value propagates"),
        # regular expressions
        pytest.param(r'host.matches("^shop\\.")', True, id="matches anchored"),
        pytest.param('host.matches("example")', True, id="matches is a search"),
        pytest.param('host.matches("^example")', False, id="matches anchored, no"),
        pytest.param('host.matches("(?i)SHOP")', True, id="matches inline flag"),
        pytest.param('host.matches("")', True, id="empty pattern"),
        pytest.param('header["Missing"].matches(".*")', False, id="matches on null"),
        pytest.param(r'remote_addr.matches("^203\\.0\\.113\\.[0-9]+$")', True, id="matches address"),
        pytest.param('header["X-Long-Number"].matches("^9+$")', True, id="matches a long value"),
        # conditions
        pytest.param('header["X-Tier"]', True, id="present header is true"),
        pytest.param('header["X-Empty"]', False, id="empty header is false"),
        pytest.param('header["Missing"]', False, id="missing header is false"),
        pytest.param("canary_id", False, id="empty attribute is false"),
        pytest.param("tenant", True, id="present attribute is true"),
        pytest.param('!header["Missing"]', True, id="negated missing"),
        pytest.param('header["X-Tier"].lower()', True, id="method result present"),
        pytest.param('header["Missing"].lower()', False, id="no value is false"),
        pytest.param('header["X-Empty"].upper()', False, id="empty method result"),
        pytest.param("true", True, id="true"),
        pytest.param("false", False, id="false"),
        pytest.param("!false", True, id="not false"),
        pytest.param("!!true", True, id="double negation"),
        pytest.param("!!!true", False, id="triple negation"),
        # logic and precedence
        pytest.param("true || false && false", True, id="&& binds tighter than || (right)"),
        pytest.param("false && false || true", True, id="&& binds tighter than || (left)"),
        pytest.param("false && (false || true)", False, id="parentheses group"),
        pytest.param("(true || false) && false", False, id="parentheses group ||"),
        pytest.param('!header["X-Tier"] == "gold"', False, id="! binds looser than =="),
        pytest.param('!path.startsWith("/admin")', True, id="! of a method call"),
        pytest.param("false || false || true", True, id="three-way or"),
        pytest.param("false || false || false", False, id="three-way or, none"),
        pytest.param("true && true && false", False, id="three-way and"),
        pytest.param("true && true && true", True, id="three-way and, all"),
        pytest.param('header["X-Beta"] && !cookie["opt_out"]', False, id="presence tests"),
        pytest.param(
            'header["X-Tier"] == "gold" && !path.startsWith("/admin") || cookie["beta"] in ["1", "yes"]',
            True,
            id="example from the brief",
        ),
        # literals and layout
        pytest.param('header["X-Quote"] == "a\\"b\'c\\\\d"', True, id="escapes in double quotes"),
        pytest.param("header[\"X-Quote\"] == 'a\"b\\'c\\\\d'", True, id="escapes in single quotes"),
        pytest.param('header["X-Latin"] == "caf\\u00e9"', True, id="unicode escape"),
        pytest.param('header["X-Latin"] == "café"', True, id="non-ascii in literal"),
        pytest.param('header["X-Tab"] == "a\\tb"', True, id="tab escape"),
        pytest.param('header["X-Tab"] == "a\tb"', True, id="raw tab in literal"),
        pytest.param('header["X-Tab"].contains("\\n")', False, id="newline escape"),
        pytest.param(
            '\n  header["X-Tier"]\n    == "gold"\r\n  &&\tpath\t.\tstartsWith ( "/api" )\n',
            True,
            id="whitespace and line breaks",
        ),
        pytest.param('header [ "X-Tier" ] == "gold"', True, id="spaces inside a lookup"),
    ],
)
def test_evaluate(source: str, expected: bool) -> None:
    assert Expression(source).evaluate(REQUEST) is expected


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


class RecordingFacts:
    """Facts that record every read, to prove what was (not) evaluated."""

    def __init__(self, facts: MappingFacts) -> None:
        self.facts = facts
        self.calls: list[tuple[str, str]] = []

    def attribute(self, name: str) -> str | None:
        self.calls.append(("attribute", name))
        return self.facts.attribute(name)

    def header(self, name: str) -> str | None:
        self.calls.append(("header", name))
        return self.facts.header(name)

    def query(self, name: str) -> str | None:
        self.calls.append(("query", name))
        return self.facts.query(name)

    def cookie(self, name: str) -> str | None:
        self.calls.append(("cookie", name))
        return self.facts.cookie(name)


SHORT_CIRCUIT_FACTS = MappingFacts({"path": "/p"}, headers={"a": "1"}, query={"q": "1"}, cookies={"c": "1"})


@pytest.mark.parametrize(
    "source, expected, calls",
    [
        pytest.param('header["a"] == "1" || cookie["c"] == "1"', True, [("header", "a")], id="|| stops at true"),
        pytest.param(
            'header["a"] == "0" || cookie["c"] == "1"',
            True,
            [("header", "a"), ("cookie", "c")],
            id="|| goes on after false",
        ),
        pytest.param('header["a"] == "0" && cookie["c"] == "1"', False, [("header", "a")], id="&& stops at false"),
        pytest.param(
            'header["a"] == "1" && cookie["c"] == "0"',
            False,
            [("header", "a"), ("cookie", "c")],
            id="&& goes on after true",
        ),
        pytest.param(
            'header["x"] || query["q"] == "1" || cookie["c"] == "1" || path == "/p"',
            True,
            [("header", "x"), ("query", "q")],
            id="long || stops at the first true",
        ),
        pytest.param(
            'header["a"] && query["q"] == "0" && cookie["c"] == "1" && path == "/p"',
            False,
            [("header", "a"), ("query", "q")],
            id="long && stops at the first false",
        ),
        pytest.param(
            'header["a"] == "1" || cookie["c"] == "1" && path == "/p"',
            True,
            [("header", "a")],
            id="precedence: the && group is skipped whole",
        ),
        pytest.param(
            '!(header["a"] == "1") && cookie["c"] == "1"',
            False,
            [("header", "a")],
            id="negated operand stops &&",
        ),
        pytest.param(
            'path.startsWith("/") && header["a"] in ["1"] && query["q"].lower() == "1"',
            True,
            [("attribute", "path"), ("header", "a"), ("query", "q")],
            id="each operand read once, in order",
        ),
        pytest.param('header["a"] == header["a"]', True, [("header", "a"), ("header", "a")], id="no caching"),
    ],
)
def test_short_circuit(source: str, expected: bool, calls: list[tuple[str, str]]) -> None:
    facts = RecordingFacts(SHORT_CIRCUIT_FACTS)
    assert Expression(source).evaluate(facts) is expected
    assert facts.calls == calls


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


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(42, id="int"),
        pytest.param(None, id="None"),
        pytest.param(b'path == "/"', id="bytes"),
    ],
)
def test_source_must_be_a_string(source: object) -> None:
    with pytest.raises(ExpressionError, match="an expression must be a string"):
        Expression(source)  # type: ignore[arg-type]


def nested(kind: str, levels: int) -> str:
    if kind == "parentheses":
        return "(" * levels + 'path == "/"' + ")" * levels
    if kind == "negations":
        return "!" * levels + "path"
    if kind == "methods":
        return "path" + ".lower()" * levels
    raise AssertionError(kind)


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


class ConstantFacts:
    """Facts that answer every question with one value of any type."""

    def __init__(self, value: object) -> None:
        self.value = value

    def attribute(self, name: str) -> t.Any:
        return self.value

    def header(self, name: str) -> t.Any:
        return self.value

    def query(self, name: str) -> t.Any:
        return self.value

    def cookie(self, name: str) -> t.Any:
        return self.value


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


def test_repr_equality_hash_and_pickle() -> None:
    source = 'header["X-Tier"] == "gold"'
    expression = Expression(source)
    assert repr(expression) == "Expression('header[\"X-Tier\"] == \"gold\"')"
    assert expression.source == source
    assert expression == Expression(source)
    assert expression != Expression('header["X-Tier"] == "silver"')
    assert expression != source
    assert len({expression, Expression(source)}) == 1
    copy = pickle.loads(pickle.dumps(expression))
    assert copy == expression
    assert copy.evaluate(REQUEST) is True


def test_expression_is_immutable() -> None:
    expression = Expression("true")
    with pytest.raises(AttributeError):
        expression.source = "false"
    assert expression.evaluate(REQUEST) is True


PACKAGE_DIR = pathlib.Path(expression_module.__file__).parent
MODULE_PATHS = sorted(PACKAGE_DIR.glob("*.py"))


def test_the_source_checks_see_every_module_of_the_package() -> None:
    assert PACKAGE_DIR.name == "expression"
    assert {path.name for path in MODULE_PATHS} >= {"__init__.py", "tokens.py", "parser.py", "evaluate.py"}


@pytest.mark.parametrize("path", MODULE_PATHS, ids=lambda path: path.name)
def test_module_source_never_calls_eval_exec_or_compile(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    without_regex_compile = text.replace("re.compile(", "")
    for needle in ("eval(", "exec(", "compile("):
        assert needle not in without_regex_compile, needle


@pytest.mark.parametrize("path", MODULE_PATHS, ids=lambda path: path.name)
def test_module_names_no_code_execution_builtins(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    forbidden = {"eval", "exec", "compile", "__import__", "getattr", "setattr", "globals", "locals", "vars"}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & forbidden
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert "ast" not in imported
    compile_calls = [
        ast.unparse(node.func.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
    ]
    assert set(compile_calls) <= {"re"}


def test_the_package_compiles_only_regular_expressions() -> None:
    compile_calls = [
        ast.unparse(node.func.value)
        for path in MODULE_PATHS
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
    ]
    assert compile_calls and set(compile_calls) == {"re"}


THREAD_CASES = [
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "gold"}), True),
    (MappingFacts({"path": "/admin/users"}, headers={"X-Tier": "gold"}), False),
    (MappingFacts({"path": "/admin/users"}, cookies={"beta": "yes"}), True),
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "silver"}, cookies={"beta": "no"}), False),
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "gold"}, cookies={"beta": "1"}), True),
    (MappingFacts(), False),
]


def test_one_expression_shared_by_eight_threads() -> None:
    expression = Expression(
        'header["X-Tier"] == "gold" && !path.startsWith("/admin") || cookie["beta"] in ["1", "yes"]'
    )
    threads_count, rounds = 8, 500
    barrier = threading.Barrier(threads_count)
    right = [0] * threads_count
    wrong: list[tuple[int, int]] = []

    def work(index: int) -> None:
        barrier.wait()
        for round_ in range(rounds):
            # each thread walks the cases from a different start, so that
            # neighbours evaluate different facts at the same moment
            for offset in range(len(THREAD_CASES)):
                facts, expected = THREAD_CASES[(index + round_ + offset) % len(THREAD_CASES)]
                if expression.evaluate(facts) is expected:
                    right[index] += 1
                else:
                    wrong.append((index, round_))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert right == [rounds * len(THREAD_CASES)] * threads_count


def test_a_deep_caller_stack_gets_an_expression_error() -> None:
    source = nested("parentheses", MAX_DEPTH)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        with pytest.raises(ExpressionError, match="nests too deeply for the current stack"):
            Expression(source)
    finally:
        sys.setrecursionlimit(limit)
    Expression(source)


FUZZ_ALPHABET = ' ()[],.!=<>&|"\'\\-0123456789abcehlnprstuxyzA_\n\u00e9'


def test_mutated_sources_compile_or_raise_expression_error() -> None:
    """Seeded fuzzing: any text either compiles or raises ExpressionError."""
    seeds = [
        'header["X-Tier"] == "gold" && !path.startsWith("/admin") || cookie["beta"] in ["1", "yes"]',
        '(query["n"] >= 10 || host.matches("^a[bc]+$")) && role.lower() != null',
        "!(path.size() < 3) && method in ['GET', -1, 2.5, true, null]",
    ]
    random = Random(20240611)
    compiled = failed = 0
    for _ in range(3000):
        text = list(random.choice(seeds))
        for _ in range(random.randint(1, 4)):
            where = random.randrange(len(text) + 1)
            action = random.random()
            if action < 0.4 and text:
                del text[min(where, len(text) - 1)]
            elif action < 0.8:
                text.insert(where, random.choice(FUZZ_ALPHABET))
            elif text:
                text[min(where, len(text) - 1)] = random.choice(FUZZ_ALPHABET)
        source = "".join(text)
        try:
            expression = Expression(source)
        except ExpressionError as error:
            assert 0 <= error.position <= len(source)
            failed += 1
            continue
        compiled += 1
        assert expression.evaluate(REQUEST) in (True, False)
        assert expression.evaluate(ConstantFacts(None)) in (True, False)
        assert expression.evaluate(ConstantFacts(7)) in (True, False)
    assert compiled > 100 and failed > 100  # the mutations exercised both sides


def test_documented_nesting_example_is_four_deep() -> None:
    inner = '!(path.lower().startsWith("/a"))'
    Expression("(" * (MAX_DEPTH - 4) + inner + ")" * (MAX_DEPTH - 4))
    with pytest.raises(ExpressionError, match="nesting"):
        Expression("(" * (MAX_DEPTH - 3) + inner + ")" * (MAX_DEPTH - 3))
