"""Tests of graywsgi.rules.expression.evaluate: what expressions evaluate to, and short-circuiting."""

from __future__ import annotations

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.facts import MappingFacts
from tests.rules.expression.helpers import REQUEST


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
