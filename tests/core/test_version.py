"""Tests for graywsgi.core.version.

The expected answers of the range, desugaring, validity and ordering tables
were checked against the real npm ``semver`` package (7.8.6, default
options) before being written down here; most rows come from node-semver's
own test fixtures (range-include.js, range-exclude.js, range-parse.js,
comparisons.js, equality.js, valid-versions.js, invalid-versions.js), the
rest cover each construct of the module. Rows that describe a documented
difference from node-semver are kept in their own tables.
"""

from __future__ import annotations

import dataclasses
import doctest
import random
import time

import pytest

import graywsgi.core.version as version_module
from graywsgi.core.version import Version, VersionContext, VersionRange

# ---------------------------------------------------------------------------
# VersionRange.contains: (range, version, expected), as semver.satisfies says
# ---------------------------------------------------------------------------

RANGE_TABLE: dict[str, list[tuple[str, str, bool]]] = {
    "fixture include": [
        ("1.0.0 - 2.0.0", "1.2.3", True),
        ("^1.2.3+build", "1.2.3", True),
        ("^1.2.3+build", "1.3.0", True),
        ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3", True),
        ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2", True),
        ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha", True),
        ("1.2.3+asdf - 2.4.3+asdf", "1.2.3", True),
        ("1.0.0", "1.0.0", True),
        (">=*", "0.2.4", True),
        ("", "1.0.0", True),
        ("*", "1.2.3", True),
        (">=1.0.0", "1.0.0", True),
        (">=1.0.0", "1.0.1", True),
        (">=1.0.0", "1.1.0", True),
        (">1.0.0", "1.0.1", True),
        (">1.0.0", "1.1.0", True),
        ("<=2.0.0", "2.0.0", True),
        ("<=2.0.0", "1.9999.9999", True),
        ("<=2.0.0", "0.2.9", True),
        ("<2.0.0", "1.9999.9999", True),
        ("<2.0.0", "0.2.9", True),
        (">= 1.0.0", "1.0.0", True),
        (">=  1.0.0", "1.0.1", True),
        (">=   1.0.0", "1.1.0", True),
        ("> 1.0.0", "1.0.1", True),
        (">  1.0.0", "1.1.0", True),
        ("<=   2.0.0", "2.0.0", True),
        ("<= 2.0.0", "1.9999.9999", True),
        ("<=  2.0.0", "0.2.9", True),
        ("<    2.0.0", "1.9999.9999", True),
        ("<\t2.0.0", "0.2.9", True),
        (">=0.1.97", "0.1.97", True),
        ("0.1.20 || 1.2.4", "1.2.4", True),
        (">=0.2.3 || <0.0.1", "0.0.0", True),
        (">=0.2.3 || <0.0.1", "0.2.3", True),
        (">=0.2.3 || <0.0.1", "0.2.4", True),
        ("||", "1.3.4", True),
        ("2.x.x", "2.1.3", True),
        ("1.2.x", "1.2.3", True),
        ("1.2.x || 2.x", "2.1.3", True),
        ("1.2.x || 2.x", "1.2.3", True),
        ("x", "1.2.3", True),
        ("2.*.*", "2.1.3", True),
        ("1.2.*", "1.2.3", True),
        ("1.2.* || 2.*", "2.1.3", True),
        ("1.2.* || 2.*", "1.2.3", True),
        ("2", "2.1.2", True),
        ("2.3", "2.3.1", True),
        ("~0.0.1", "0.0.1", True),
        ("~0.0.1", "0.0.2", True),
        ("~x", "0.0.9", True),
        ("~2", "2.0.9", True),
        ("~2.4", "2.4.0", True),
        ("~2.4", "2.4.5", True),
        ("~>3.2.1", "3.2.2", True),
        ("~1", "1.2.3", True),
        ("~>1", "1.2.3", True),
        ("~> 1", "1.2.3", True),
        ("~1.0", "1.0.2", True),
        ("~ 1.0", "1.0.2", True),
        ("~ 1.0.3", "1.0.12", True),
        (">=1", "1.0.0", True),
        (">= 1", "1.0.0", True),
        ("<1.2", "1.1.1", True),
        ("< 1.2", "1.1.1", True),
        ("~v0.5.4-pre", "0.5.5", True),
        ("~v0.5.4-pre", "0.5.4", True),
        ("=0.7.x", "0.7.2", True),
        ("<=0.7.x", "0.7.2", True),
        (">=0.7.x", "0.7.2", True),
        ("<=0.7.x", "0.6.2", True),
        ("~1.2.1 >=1.2.3", "1.2.3", True),
        ("~1.2.1 =1.2.3", "1.2.3", True),
        ("~1.2.1 1.2.3", "1.2.3", True),
        ("~1.2.1 >=1.2.3 1.2.3", "1.2.3", True),
        ("~1.2.1 1.2.3 >=1.2.3", "1.2.3", True),
        (">=1.2.1 1.2.3", "1.2.3", True),
        ("1.2.3 >=1.2.1", "1.2.3", True),
        (">=1.2.3 >=1.2.1", "1.2.3", True),
        (">=1.2.1 >=1.2.3", "1.2.3", True),
        (">=1.2", "1.2.8", True),
        ("^1.2.3", "1.8.1", True),
        ("^0.1.2", "0.1.2", True),
        ("^0.1", "0.1.2", True),
        ("^0.0.1", "0.0.1", True),
        ("^1.2", "1.4.2", True),
        ("^1.2 ^1", "1.4.2", True),
        ("^1.2.3-alpha", "1.2.3-pre", True),
        ("^1.2.0-alpha", "1.2.0-pre", True),
        ("^0.0.1-alpha", "0.0.1-beta", True),
        ("^0.0.1-alpha", "0.0.1", True),
        ("^0.1.1-alpha", "0.1.1-beta", True),
        ("^x", "1.2.3", True),
        ("x - 1.0.0", "0.9.7", True),
        ("x - 1.x", "0.9.7", True),
        ("1.0.0 - x", "1.9.7", True),
        ("1.x - x", "1.9.7", True),
        ("<=7.x", "7.9.9", True),
    ],
    "fixture exclude": [
        ("1.0.0 - 2.0.0", "2.2.3", False),
        ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2", False),
        ("1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha", False),
        ("^1.2.3+build", "2.0.0", False),
        ("^1.2.3+build", "1.2.0", False),
        ("^1.2.3", "1.2.3-pre", False),
        ("^1.2", "1.2.0-pre", False),
        (">1.2", "1.3.0-beta", False),
        ("<=1.2.3", "1.2.3-beta", False),
        ("^1.2.3", "1.2.3-beta", False),
        ("=0.7.x", "0.7.0-asdf", False),
        (">=0.7.x", "0.7.0-asdf", False),
        ("1.0.0", "1.0.1", False),
        (">=1.0.0", "0.0.0", False),
        (">=1.0.0", "0.0.1", False),
        (">=1.0.0", "0.1.0", False),
        (">1.0.0", "0.0.1", False),
        (">1.0.0", "0.1.0", False),
        ("<=2.0.0", "3.0.0", False),
        ("<=2.0.0", "2.9999.9999", False),
        ("<=2.0.0", "2.2.9", False),
        ("<2.0.0", "2.9999.9999", False),
        ("<2.0.0", "2.2.9", False),
        (">=0.1.97", "0.1.93", False),
        ("0.1.20 || 1.2.4", "1.2.3", False),
        (">=0.2.3 || <0.0.1", "0.0.3", False),
        (">=0.2.3 || <0.0.1", "0.2.2", False),
        ("2.x.x", "1.1.3", False),
        ("2.x.x", "3.1.3", False),
        ("1.2.x", "1.3.3", False),
        ("1.2.x || 2.x", "3.1.3", False),
        ("1.2.x || 2.x", "1.1.3", False),
        ("2.*.*", "1.1.3", False),
        ("2.*.*", "3.1.3", False),
        ("1.2.*", "1.3.3", False),
        ("1.2.* || 2.*", "3.1.3", False),
        ("1.2.* || 2.*", "1.1.3", False),
        ("2", "1.1.2", False),
        ("2.3", "2.4.1", False),
        ("~0.0.1", "0.1.0-alpha", False),
        ("~0.0.1", "0.1.0", False),
        ("~2.4", "2.5.0", False),
        ("~2.4", "2.3.9", False),
        ("~>3.2.1", "3.3.2", False),
        ("~>3.2.1", "3.2.0", False),
        ("~1", "0.2.3", False),
        ("~>1", "2.2.3", False),
        ("~1.0", "1.1.0", False),
        ("<1", "1.0.0", False),
        (">=1.2", "1.1.1", False),
        ("~v0.5.4-beta", "0.5.4-alpha", False),
        ("=0.7.x", "0.8.2", False),
        (">=0.7.x", "0.6.2", False),
        ("<0.7.x", "0.7.2", False),
        ("<1.2.3", "1.2.3-beta", False),
        ("=1.2.3", "1.2.3-beta", False),
        (">1.2", "1.2.8", False),
        ("^0.0.1", "0.0.2-alpha", False),
        ("^0.0.1", "0.0.2", False),
        ("^1.2.3", "2.0.0-alpha", False),
        ("^1.2.3", "1.2.2", False),
        ("^1.2", "1.1.9", False),
        ("^1.0.0", "2.0.0-rc1", False),
    ],
    "primitive": [
        ("=1.2.3", "1.2.3", True),
        ("= 1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("<1.2.3", "1.2.2", True),
        ("<1.2.3", "1.2.3", False),
        ("<=1.2.3", "1.2.3", True),
        (">1.2.3", "1.2.3", False),
        (">1.2.3", "1.2.4", True),
        (">=1.2.3", "1.2.3", True),
        (">=1.2.3", "1.2.2", False),
        (">=1.2.3 <2.0.0", "1.5.0", True),
        (">=1.2.3 <2.0.0", "2.0.0", False),
        (">=1.2.3 <2.0.0", "1.2.2", False),
        ("  >=1.2.3    <2  ", "1.5.0", True),
        (">=1.2.3\u00a0<2", "1.5.0", True),
        ("<2.0.0 >2.0.0", "2.0.0", False),
        ("1.2.3", "1.2.3+build.5", True),
        ("1.2.3+build", "1.2.3+other", True),
        ("1.2.3", "v1.2.3", True),
    ],
    "x-range": [
        ("*", "0.0.0", True),
        ("X", "1.2.3", True),
        ("x.x.x", "3.4.5", True),
        ("1", "1.0.0", True),
        ("1", "1.99.99", True),
        ("1", "2.0.0", False),
        ("1", "0.9.9", False),
        ("1.2", "1.2.9", True),
        ("1.2", "1.3.0", False),
        ("1.2.X", "1.2.0", True),
        (">1", "1.9.9", False),
        (">1", "2.0.0", True),
        (">1.2", "1.3.0", True),
        (">1.2", "1.2.9", False),
        (">1.x", "2.0.0", True),
        (">1.x", "1.9.9", False),
        (">=1.x", "1.0.0", True),
        (">=1.x", "0.9.9", False),
        ("<1", "0.9.9", True),
        ("<1", "1.0.0-0", False),
        ("<1.x", "0.9.9", True),
        ("<1.x", "1.0.0", False),
        ("<=1.2", "1.2.9", True),
        ("<=1.2", "1.3.0", False),
        ("<=1.x", "1.9.9", True),
        ("<=1.x", "2.0.0", False),
        (">*", "0.0.0", False),
        (">*", "1.0.0", False),
        ("<*", "0.0.0", False),
        ("<=*", "1.0.0", True),
        (">=*", "0.0.0", True),
        ("1.2.x-beta", "1.2.5", True),
    ],
    "tilde": [
        ("~1.2.3", "1.2.3", True),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.2.2", False),
        ("~1.2.3", "1.3.0", False),
        ("~1.2", "1.2.0", True),
        ("~1.2", "1.3.0", False),
        ("~1", "1.9.9", True),
        ("~1", "2.0.0", False),
        ("~0.2.3", "0.2.5", True),
        ("~0.2.3", "0.3.0", False),
        ("~1.2.3-beta.2", "1.2.3-beta.4", True),
        ("~1.2.3-beta.2", "1.2.3-beta.1", False),
        ("~1.2.3-beta.2", "1.2.4-beta", False),
        ("~1.2.3-beta.2", "1.2.5", True),
        ("~>1.2.3", "1.2.7", True),
        ("~>1.2.3", "1.3.0", False),
        ("~*", "4.0.0", True),
    ],
    "caret": [
        ("^1.2.3", "1.2.3", True),
        ("^1.2.3", "1.9.9", True),
        ("^1.2.3", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.2.2", False),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^1.2.x", "1.2.0", True),
        ("^1.2.x", "1.9.0", True),
        ("^1.2.x", "1.1.9", False),
        ("^1.2.x", "2.0.0", False),
        ("^1.2", "1.2.0", True),
        ("^0.0.x", "0.0.5", True),
        ("^0.0.x", "0.1.0", False),
        ("^0.0", "0.0.9", True),
        ("^0.0", "0.1.0", False),
        ("^0.x", "0.9.0", True),
        ("^0.x", "1.0.0", False),
        ("^0", "0.0.0", True),
        ("^0", "1.0.0", False),
        ("^1.x", "1.0.0", True),
        ("^1.x", "2.0.0", False),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.3-beta.1", False),
        ("^1.2.3-beta.2", "1.2.4-beta", False),
        ("^1.2.3-beta.2", "1.2.4", True),
        ("^0.0.3-beta", "0.0.3-pr.2", True),
        ("^0.0.3-beta", "0.0.3", True),
        ("^0.0.3-beta", "0.0.4", False),
        ("^ 1.2.3", "1.5.0", True),
        ("^*", "0.0.0", True),
    ],
    "hyphen": [
        ("1.2.3 - 2.3.4", "1.2.3", True),
        ("1.2.3 - 2.3.4", "2.3.4", True),
        ("1.2.3 - 2.3.4", "2.3.5", False),
        ("1.2.3 - 2.3.4", "1.2.2", False),
        ("1.2 - 2.3.4", "1.2.0", True),
        ("1.2 - 2.3.4", "1.1.9", False),
        ("1.2.3 - 2.3", "2.3.9", True),
        ("1.2.3 - 2.3", "2.4.0", False),
        ("1.2.3 - 2", "2.9.9", True),
        ("1.2.3 - 2", "3.0.0", False),
        ("1.2.3 - 2.3.4-rc.1", "2.3.4-rc.1", True),
        ("1.2.3 - 2.3.4-rc.1", "2.3.4", False),
        ("v1.2.3 - v2.3.4", "2.0.0", True),
    ],
    "v and = prefixes": [
        ("v1.2.3", "1.2.3", True),
        ("=v1.2.3", "1.2.3", True),
        (">=v1.2.3", "1.2.4", True),
        ("~v1.2", "1.2.7", True),
        ("^v1.2.3", "1.9.0", True),
        ("^=1.2.3", "1.9.0", True),
        ("v1.x", "1.5.0", True),
    ],
    "prerelease rule": [
        ("^1.2.3", "1.2.4-beta", False),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        (">=1.2.3-beta <1.3", "1.2.4-beta", False),
        (">=1.2.3-beta <1.3", "1.2.3-rc.1", True),
        ("<2.0.0", "2.0.0-0", False),
        ("<2.0.0-0", "1.9.9", True),
        (">=1.2.3-alpha", "1.2.3-beta", True),
        ("1.2.3-beta", "1.2.3-beta", True),
        ("1.2.3-beta", "1.2.3-beta+build", True),
        ("*", "1.2.3-beta", False),
        ("", "1.2.3-beta", False),
        ("<1.2.3-rc", "1.2.3-beta", True),
        (">1.0.0-rc <2", "1.2.3-beta", False),
        (">1.0.0-rc <2", "1.0.0-rc.2", True),
        ("1.2.3-beta || 2", "1.2.3-beta", True),
        ("* || 1.2.3-beta", "1.2.3-beta", False),
        (">=1.2.3-alpha <1.2.3-gamma || *", "1.2.3-beta", False),
        (">=1.2.3-alpha <1.2.3-gamma || >=5", "1.2.3-beta", True),
        (">=0.0.0-0", "0.0.0-0", True),
        (">=0.0.0-0", "0.0.1-0", False),
    ],
    "unions and edge cases": [
        ("1.2.3 ||", "9.9.9", True),
        (">* || 1.2.3", "1.2.3", True),
        ("<0.0.0-0", "0.0.0", False),
        ("<0.0.0-0", "0.0.0-0", False),
        ("1.2.3 || 2.3.4 || 3.4.5", "2.3.4", True),
        ("1.2.3 || 2.3.4 || 3.4.5", "2.3.5", False),
        ("^1 || ^3", "2.0.0", False),
        ("^1 || ^3", "3.1.0", True),
        ("1.2+abc", "1.2.5", True),
        (">=0.0.0", "0.0.0", True),
        ("1.2.3 *", "1.2.3", True),
        ("1.2.3 *", "1.2.4", False),
    ],
}

RANGE_CASES = [
    pytest.param(text, version, expected, id=f"{group}: {text!r} {'has' if expected else 'lacks'} {version}")
    for group, rows in RANGE_TABLE.items()
    for text, version, expected in rows
]


@pytest.mark.parametrize("text, version, expected", RANGE_CASES)
def test_range_contains(text: str, version: str, expected: bool) -> None:
    version_range = VersionRange(text)
    assert version_range.contains(version) is expected
    assert (version in version_range) is expected
    assert version_range.contains(Version.parse(version)) is expected


# ---------------------------------------------------------------------------
# Desugared form: str(VersionRange(text)) == semver.validRange(text)
# ---------------------------------------------------------------------------

DESUGAR_CASES = [
    pytest.param("1.0.0 - 2.0.0", ">=1.0.0 <=2.0.0", id="hyphen, full"),
    pytest.param("1 - 2", ">=1.0.0 <3.0.0-0", id="hyphen, majors"),
    pytest.param("1.0 - 2.0", ">=1.0.0 <2.1.0-0", id="hyphen, minors"),
    pytest.param("1.2 - 2.3.4", ">=1.2.0 <=2.3.4", id="hyphen, partial low"),
    pytest.param("1.2.3 - 2.3", ">=1.2.3 <2.4.0-0", id="hyphen, partial high minor"),
    pytest.param("1.2.3 - 2", ">=1.2.3 <3.0.0-0", id="hyphen, partial high major"),
    pytest.param("1.2 - 3.4", ">=1.2.0 <3.5.0-0", id="hyphen, both partial"),
    pytest.param("x - 1.0.0", "<=1.0.0", id="hyphen, any low"),
    pytest.param("1.2.3-pre+asdf - 2.4.3-pre+asdf", ">=1.2.3-pre <=2.4.3-pre", id="hyphen, prerelease and build"),
    pytest.param("1.0.0", "1.0.0", id="exact"),
    pytest.param("=1.2.3", "1.2.3", id="exact with ="),
    pytest.param("v1.2.3", "1.2.3", id="exact with v"),
    pytest.param(">=v1.2.3", ">=1.2.3", id="operator and v"),
    pytest.param("1.2.3+build", "1.2.3", id="build dropped"),
    pytest.param(">=*", "*", id=">=*"),
    pytest.param("", "*", id="empty"),
    pytest.param("*", "*", id="star"),
    pytest.param("x", "*", id="x"),
    pytest.param("||", "*", id="empty union"),
    pytest.param(">=0.0.0", "*", id=">=0.0.0 is any"),
    pytest.param(">= 1.0.0", ">=1.0.0", id="space after >="),
    pytest.param("<\t2.0.0", "<2.0.0", id="tab after <"),
    pytest.param("0.1.20 || 1.2.4", "0.1.20||1.2.4", id="union"),
    pytest.param(">=0.2.3 || <0.0.1", ">=0.2.3||<0.0.1", id="union of primitives"),
    pytest.param("1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0", id="union of x-ranges"),
    pytest.param("2.x.x", ">=2.0.0 <3.0.0-0", id="2.x.x"),
    pytest.param("1.2.*", ">=1.2.0 <1.3.0-0", id="1.2.*"),
    pytest.param("2", ">=2.0.0 <3.0.0-0", id="bare major"),
    pytest.param("2.3", ">=2.3.0 <2.4.0-0", id="bare minor"),
    pytest.param(">1", ">=2.0.0", id=">1"),
    pytest.param(">1.2", ">=1.3.0", id=">1.2"),
    pytest.param(">1.x", ">=2.0.0", id=">1.x"),
    pytest.param(">=1.x", ">=1.0.0", id=">=1.x"),
    pytest.param("<1", "<1.0.0-0", id="<1"),
    pytest.param("<1.x", "<1.0.0-0", id="<1.x"),
    pytest.param("<1.2", "<1.2.0-0", id="<1.2"),
    pytest.param("<=1.2", "<1.3.0-0", id="<=1.2"),
    pytest.param("<=1.x", "<2.0.0-0", id="<=1.x"),
    pytest.param("=0.7.x", ">=0.7.0 <0.8.0-0", id="=0.7.x"),
    pytest.param(">X", "<0.0.0-0", id=">X matches nothing"),
    pytest.param("<*", "<0.0.0-0", id="<* matches nothing"),
    pytest.param("<x <* || >* 2.x", "<0.0.0-0", id="all operands null"),
    pytest.param(">x 2.x || * || <x", "*", id="star operand swallows the union"),
    pytest.param("~1.2.3", ">=1.2.3 <1.3.0-0", id="~1.2.3"),
    pytest.param("~1.2", ">=1.2.0 <1.3.0-0", id="~1.2"),
    pytest.param("~1", ">=1.0.0 <2.0.0-0", id="~1"),
    pytest.param("~0.2.3", ">=0.2.3 <0.3.0-0", id="~0.2.3"),
    pytest.param("~1.2.3-beta.2", ">=1.2.3-beta.2 <1.3.0-0", id="~ with prerelease"),
    pytest.param("~>3.2.1", ">=3.2.1 <3.3.0-0", id="~>"),
    pytest.param("~> 1", ">=1.0.0 <2.0.0-0", id="~> with space"),
    pytest.param("~ 1.0", ">=1.0.0 <1.1.0-0", id="~ with space"),
    pytest.param("^1.2.3", ">=1.2.3 <2.0.0-0", id="^1.2.3"),
    pytest.param("^0.2.3", ">=0.2.3 <0.3.0-0", id="^0.2.3"),
    pytest.param("^0.0.3", ">=0.0.3 <0.0.4-0", id="^0.0.3"),
    pytest.param("^1.2.x", ">=1.2.0 <2.0.0-0", id="^1.2.x"),
    pytest.param("^1.2", ">=1.2.0 <2.0.0-0", id="^1.2"),
    pytest.param("^0.0.x", "<0.1.0-0", id="^0.0.x"),
    pytest.param("^0.0", "<0.1.0-0", id="^0.0"),
    pytest.param("^0.x", "<1.0.0-0", id="^0.x"),
    pytest.param("^0", "<1.0.0-0", id="^0"),
    pytest.param("^0.1", ">=0.1.0 <0.2.0-0", id="^0.1"),
    pytest.param("^1.x", ">=1.0.0 <2.0.0-0", id="^1.x"),
    pytest.param("^ 1", ">=1.0.0 <2.0.0-0", id="^ with space"),
    pytest.param("^1.2.3-beta.2", ">=1.2.3-beta.2 <2.0.0-0", id="^ with prerelease"),
    pytest.param("^0.0.3-beta", ">=0.0.3-beta <0.0.4-0", id="^0.0.3-beta"),
    pytest.param("^ 1.2 ^ 1", ">=1.2.0 <2.0.0-0 >=1.0.0", id="two carets, duplicate dropped"),
    pytest.param(">=1.2.3 >=1.2.3", ">=1.2.3", id="duplicate comparator dropped"),
    pytest.param("1.2.3 *", "1.2.3", id="star dropped next to a comparator"),
    pytest.param("1.2.3 ||", "*", id="trailing || admits everything"),
    pytest.param("* || 1.2.3-beta", "*", id="star swallows prerelease operand"),
    pytest.param("1.2+abc", ">=1.2.0 <1.3.0-0", id="build on partial dropped"),
]


@pytest.mark.parametrize("text, canonical", DESUGAR_CASES)
def test_range_desugars_like_node(text: str, canonical: str) -> None:
    assert str(VersionRange(text)) == canonical


# ---------------------------------------------------------------------------
# Invalid ranges: new semver.Range(text) throws
# ---------------------------------------------------------------------------

INVALID_RANGES = [
    pytest.param(">=1.2.3.4", id="four numbers"),
    pytest.param("1.2.3.4", id="bare four numbers"),
    pytest.param("blerg", id="word"),
    pytest.param("git+https://user:password0123@github.com/foo", id="url"),
    pytest.param(">01.02.03", id="leading zeros"),
    pytest.param("~1.2.3beta", id="prerelease without hyphen"),
    pytest.param("1.2.3-", id="empty prerelease"),
    pytest.param("1.2.3-01", id="leading zero in prerelease"),
    pytest.param("1.2.3-beta..1", id="empty prerelease identifier"),
    pytest.param(">=", id="operator alone"),
    pytest.param(">", id="greater alone"),
    pytest.param("> = 1.2.3", id="split operator"),
    pytest.param("=1.2.3 - 2.0.0", id="= on hyphen low bound"),
    pytest.param(">1.2.3 - 2", id="operator on hyphen range"),
    pytest.param("1.2.3 - 2.3.4 - 5", id="two hyphens"),
    pytest.param("1.2.3 -", id="dangling hyphen"),
    pytest.param("1.x.3", id="x before number"),
    pytest.param("x.1", id="x major with minor"),
    pytest.param("V1.2.3", id="capital V"),
    pytest.param("vv1.2.3", id="double v"),
    pytest.param("==1.2.3", id="double ="),
    pytest.param("a || 1.2.3", id="bad operand in union"),
    pytest.param("<* 1.2.3.4", id="bad comparator after null set"),
    pytest.param("9007199254740992.0.0", id="major above MAX_SAFE_INTEGER"),
    pytest.param("^9007199254740991", id="caret bound above MAX_SAFE_INTEGER"),
    pytest.param("1.2.3 !2", id="bang"),
    pytest.param("\u0661.2.3", id="non-ASCII digit"),
]


@pytest.mark.parametrize("text", INVALID_RANGES)
def test_invalid_range(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        VersionRange(text)
    assert f"invalid version range {text!r}" in str(raised.value)


def test_invalid_range_message_names_comparator() -> None:
    with pytest.raises(ValueError, match=r"^invalid version range '>=1\.2\.3\.4': invalid comparator '>=1\.2\.3\.4'$"):
        VersionRange(">=1.2.3.4")


# ---------------------------------------------------------------------------
# Version.parse
# ---------------------------------------------------------------------------

VALID_VERSIONS = [
    pytest.param("1.0.0", (1, 0, 0, (), ()), id="release"),
    pytest.param("2.1.0", (2, 1, 0, (), ()), id="minor"),
    pytest.param("3.2.1", (3, 2, 1, (), ()), id="patch"),
    pytest.param("v1.2.3", (1, 2, 3, (), ()), id="leading v"),
    pytest.param("  v1.2.3\t", (1, 2, 3, (), ()), id="surrounding whitespace"),
    pytest.param("1.2.3-0", (1, 2, 3, (0,), ()), id="prerelease 0"),
    pytest.param("1.2.3-123", (1, 2, 3, (123,), ()), id="numeric prerelease"),
    pytest.param("1.2.3-1.2.3", (1, 2, 3, (1, 2, 3), ()), id="dotted numeric prerelease"),
    pytest.param("1.2.3-1a", (1, 2, 3, ("1a",), ()), id="digit then letter"),
    pytest.param("1.2.3-0a", (1, 2, 3, ("0a",), ()), id="zero then letter"),
    pytest.param("1.2.3-a1", (1, 2, 3, ("a1",), ()), id="letter then digit"),
    pytest.param("1.2.3-alpha", (1, 2, 3, ("alpha",), ()), id="alpha"),
    pytest.param("1.2.3-alpha.1", (1, 2, 3, ("alpha", 1), ()), id="alpha.1"),
    pytest.param("1.2.3-alpha-1", (1, 2, 3, ("alpha-1",), ()), id="hyphen inside identifier"),
    pytest.param("1.2.3-alpha-.-beta", (1, 2, 3, ("alpha-", "-beta"), ()), id="hyphen-edged identifiers"),
    pytest.param("1.2.3--", (1, 2, 3, ("-",), ()), id="lone hyphen identifier"),
    pytest.param("1.2.3+456", (1, 2, 3, (), ("456",)), id="numeric build"),
    pytest.param("1.2.3+01", (1, 2, 3, (), ("01",)), id="build may have leading zero"),
    pytest.param("1.2.3+build", (1, 2, 3, (), ("build",)), id="build"),
    pytest.param("1.2.3+new-build", (1, 2, 3, (), ("new-build",)), id="build with hyphen"),
    pytest.param("1.2.3+build.1", (1, 2, 3, (), ("build", "1")), id="dotted build"),
    pytest.param("1.2.3+build.alpha.beta", (1, 2, 3, (), ("build", "alpha", "beta")), id="three build ids"),
    pytest.param("1.2.3-alpha+build", (1, 2, 3, ("alpha",), ("build",)), id="prerelease and build"),
    pytest.param("1.0.0-alpha+001", (1, 0, 0, ("alpha",), ("001",)), id="semver.org alpha+001"),
    pytest.param("1.0.0+21AF26D3----117B344092BD", (1, 0, 0, (), ("21AF26D3----117B344092BD",)), id="semver.org hex build"),
    pytest.param("1.0.0-x.7.z.92", (1, 0, 0, ("x", 7, "z", 92), ()), id="semver.org x.7.z.92"),
    pytest.param("1.0.0-x-y-z.--", (1, 0, 0, ("x-y-z", "--"), ()), id="semver.org x-y-z.--"),
    pytest.param("9007199254740991.0.0", (2**53 - 1, 0, 0, (), ()), id="largest major"),
    pytest.param("1.2.3-" + "a" * 250, (1, 2, 3, ("a" * 250,), ()), id="256 characters"),
]


@pytest.mark.parametrize("text, fields", VALID_VERSIONS)
def test_parse_valid_version(text: str, fields: tuple[object, ...]) -> None:
    version = Version.parse(text)
    assert (version.major, version.minor, version.patch, version.prerelease, version.build) == fields


INVALID_VERSIONS = [
    pytest.param("1.2", id="two numbers"),
    pytest.param("1", id="one number"),
    pytest.param("1.2.3.4", id="four numbers"),
    pytest.param("01.2.3", id="leading zero major"),
    pytest.param("1.02.3", id="leading zero minor"),
    pytest.param("1.2.03", id="leading zero patch"),
    pytest.param("1.2.3-01", id="leading zero numeric prerelease"),
    pytest.param("1.2.3-", id="empty prerelease"),
    pytest.param("1.2.3+", id="empty build"),
    pytest.param("1.2.3-a..b", id="empty prerelease identifier"),
    pytest.param("1.2.3+a..b", id="empty build identifier"),
    pytest.param("1.2.3-a+", id="prerelease then empty build"),
    pytest.param("1.2.3+build+meta", id="two plus signs"),
    pytest.param("1.2.3-beta_1", id="underscore"),
    pytest.param("1.2.3-beta!", id="bang"),
    pytest.param("1.2.3beta", id="prerelease without hyphen"),
    pytest.param("1.2.3 beta", id="inner space"),
    pytest.param("v1.2", id="v with two numbers"),
    pytest.param("V1.2.3", id="capital V"),
    pytest.param("vv1.2.3", id="double v"),
    pytest.param("v=1.2.3", id="v then ="),
    pytest.param("==1.2.3", id="double ="),
    pytest.param("-1.2.3", id="negative"),
    pytest.param("1.2.x", id="x-range"),
    pytest.param("a.b.c", id="letters"),
    pytest.param("\u0661.2.3", id="non-ASCII digit"),
    pytest.param("hello, world", id="words"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("9007199254740992.0.0", id="major too big"),
    pytest.param("90071992547409910.0.0", id="fixture: MAX_SAFE_INTEGER then 0 major"),
    pytest.param("0.90071992547409910.0", id="fixture: MAX_SAFE_INTEGER then 0 minor"),
    pytest.param("0.0.90071992547409910", id="fixture: MAX_SAFE_INTEGER then 0 patch"),
    pytest.param("1" * 255 + ".0.0", id="fixture: too long"),
    pytest.param("1.2.3-" + "a" * 251, id="257 characters"),
]


@pytest.mark.parametrize("text", INVALID_VERSIONS)
def test_parse_invalid_version(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid version "):
        Version.parse(text)


def test_invalid_version_message_names_text() -> None:
    with pytest.raises(ValueError, match=r"^invalid version '1\.02\.3': "):
        Version.parse("1.02.3")


# Version.parse accepts what node-semver's valid() (loose=false) accepts: one
# leading "v", but no "=" ("=" is a comparator operator, for ranges; node-semver
# takes "=1.2.3" as a version only with loose: true, which graywsgi does not
# offer). (text, str() of the version, or None where valid() returns null.)
NODE_SEMVER_VALID = [
    pytest.param("v1.2.3", "1.2.3", id="leading v"),
    pytest.param("\tv1.2.3\n", "1.2.3", id="leading v and whitespace"),
    pytest.param("v1.2.3-rc.1+b.7", "1.2.3-rc.1+b.7", id="leading v, prerelease and build"),
    pytest.param("=1.2.3", None, id="leading ="),
    pytest.param("=v1.2.3", None, id="leading =v"),
    pytest.param(" =1.2.3 ", None, id="leading = and whitespace"),
    pytest.param("= 1.2.3", None, id="= then space"),
    pytest.param("=1.0.0-rc.1", None, id="leading =, prerelease"),
]


@pytest.mark.parametrize("text, expected", NODE_SEMVER_VALID)
def test_parse_agrees_with_node_semver_valid(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            Version.parse(text)
    else:
        assert str(Version.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("=1.2.3", id="leading ="),
        pytest.param("=v1.2.3", id="leading =v"),
        pytest.param(" =1.2.3 ", id="leading = and whitespace"),
        pytest.param("= 1.2.3", id="= then space"),
    ],
)
def test_parse_rejects_leading_equals_and_says_why(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        Version.parse(text)
    assert type(raised.value) is ValueError
    assert str(raised.value) == (
        f"invalid version {text!r}: "
        "a leading '=' is a range operator (VersionRange), not part of a version"
    )


def test_str_is_canonical() -> None:
    assert str(Version.parse(" v1.2.3-beta.02a.3+build.007 ")) == "1.2.3-beta.02a.3+build.007"
    assert repr(Version.parse("v1.0.0-rc.1")) == "Version.parse('1.0.0-rc.1')"


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        Version.parse(b"1.2.3")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Version construction
# ---------------------------------------------------------------------------


def test_constructor_normalizes() -> None:
    version = Version(1, 2, 3, ["rc", "7"], ["b"])  # type: ignore[arg-type]
    assert version.prerelease == ("rc", 7)
    assert version.build == ("b",)
    assert version == Version.parse("1.2.3-rc.7")


@pytest.mark.parametrize(
    "args, error",
    [
        pytest.param((-1, 0, 0), ValueError, id="negative major"),
        pytest.param((1, -2, 0), ValueError, id="negative minor"),
        pytest.param((1.0, 0, 0), TypeError, id="float major"),
        pytest.param((True, 0, 0), TypeError, id="bool major"),
        pytest.param((1, 0, "3"), TypeError, id="str patch"),
        pytest.param((1, 0, 0, ("01",)), ValueError, id="prerelease leading zero"),
        pytest.param((1, 0, 0, ("",)), ValueError, id="empty prerelease identifier"),
        pytest.param((1, 0, 0, ("a.b",)), ValueError, id="dot in prerelease identifier"),
        pytest.param((1, 0, 0, (-1,)), ValueError, id="negative prerelease number"),
        pytest.param((1, 0, 0, (1.5,)), TypeError, id="float prerelease"),
        pytest.param((1, 0, 0, (), ("",)), ValueError, id="empty build identifier"),
        pytest.param((1, 0, 0, (), ("a+b",)), ValueError, id="plus in build identifier"),
        pytest.param((1, 0, 0, (), (7,)), TypeError, id="int build identifier"),
    ],
)
def test_constructor_rejects(args: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        Version(*args)  # type: ignore[arg-type]


def test_version_is_frozen() -> None:
    version = Version(1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.major = 2  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Ordering, equality and hashing (semver.compare)
# ---------------------------------------------------------------------------

SEMVER_ORG_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_semver_org_precedence_chain() -> None:
    chain = [Version.parse(text) for text in SEMVER_ORG_CHAIN]
    for lower, higher in zip(chain, chain[1:]):
        assert lower < higher and lower <= higher and higher > lower and higher >= lower
        assert lower != higher
    shuffled = chain[:]
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled) == chain


COMPARISONS = [
    pytest.param(greater, lesser, id=f"{greater} > {lesser}")
    for greater, lesser in [
        ("0.0.0", "0.0.0-foo"),
        ("0.0.1", "0.0.0"),
        ("1.0.0", "0.9.9"),
        ("0.10.0", "0.9.0"),
        ("0.99.0", "0.10.0"),
        ("2.0.0", "1.2.3"),
        ("v0.0.1", "0.0.0"),
        ("1.2.3", "1.2.3-asdf"),
        ("1.2.3", "1.2.3-4"),
        ("1.2.3", "1.2.3-4-foo"),
        ("1.2.3-5-foo", "1.2.3-5"),
        ("1.2.3-5", "1.2.3-4"),
        ("1.2.3-5-foo", "1.2.3-5-Foo"),
        ("3.0.0", "2.7.2+asdf"),
        ("1.2.3-a.10", "1.2.3-a.5"),
        ("1.2.3-a.b", "1.2.3-a.5"),
        ("1.2.3-a.b", "1.2.3-a"),
        ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
        ("1.2.3-r2", "1.2.3-r100"),
        ("1.2.3-r100", "1.2.3-R2"),
        ("1.2.3-0.0", "1.2.3-0"),
        ("1.2.3-a", "1.2.3-99999"),
        ("1.2.3-10", "1.2.3-9"),
    ]
]


@pytest.mark.parametrize("greater, lesser", COMPARISONS)
def test_comparisons(greater: str, lesser: str) -> None:
    a, b = Version.parse(greater), Version.parse(lesser)
    assert a > b and a >= b and b < a and b <= a
    assert not (a < b or a <= b or a == b)
    assert a != b


EQUALITIES = [
    pytest.param("1.2.3-beta+build", "1.2.3-beta+otherbuild", id="prerelease, builds differ"),
    pytest.param("1.2.3+build", "1.2.3+otherbuild", id="builds differ"),
    pytest.param("  v1.2.3+build", "1.2.3+otherbuild", id="v and whitespace"),
    pytest.param("1.2.3", "v1.2.3", id="v prefix"),
    pytest.param("1.2.3-0", "1.2.3-0+0", id="build on prerelease 0"),
]


@pytest.mark.parametrize("left, right", EQUALITIES)
def test_equality_ignores_build(left: str, right: str) -> None:
    a, b = Version.parse(left), Version.parse(right)
    assert a == b and a <= b and a >= b and not a < b and not a > b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_comparison_with_other_types() -> None:
    version = Version(1, 2, 3)
    assert version != "1.2.3"
    with pytest.raises(TypeError):
        version < "1.2.4"  # type: ignore[operator]  # noqa: B015


# ---------------------------------------------------------------------------
# VersionRange API details
# ---------------------------------------------------------------------------


def test_range_raw_str_repr() -> None:
    version_range = VersionRange("  ^1.2  ")
    assert version_range.raw == "  ^1.2  "
    assert str(version_range) == ">=1.2.0 <2.0.0-0"
    assert repr(version_range) == "VersionRange('  ^1.2  ')"


def test_contains_invalid_version_text_raises() -> None:
    with pytest.raises(ValueError, match=r"^invalid version 'not a version'"):
        VersionRange("*").contains("not a version")
    with pytest.raises(ValueError):
        "1.2" in VersionRange("*")  # noqa: B015


def test_contains_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        VersionRange("*").contains(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        123 in VersionRange("*")  # noqa: B015


def test_contains_rejects_leading_equals_in_the_version() -> None:
    # node-semver's satisfies("=1.2.3", "^1") is false: "=1.2.3" is not a
    # version there. Here invalid version text raises (documented).
    with pytest.raises(ValueError) as raised:
        VersionRange("^1").contains("=1.2.3")
    assert str(raised.value) == (
        "invalid version '=1.2.3': "
        "a leading '=' is a range operator (VersionRange), not part of a version"
    )
    assert VersionRange("^1").contains("v1.2.3") is True


# "=" stays a comparator operator in ranges: (range, validRange() result,
# versions it admits, versions it refuses), as node-semver 7.8.5 says.
EQUALS_IN_RANGES = [
    pytest.param("=1.2.3", "1.2.3", ["1.2.3", "v1.2.3", "1.2.3+build.5"], ["1.2.2", "1.2.4", "1.2.3-rc.1"], id="=1.2.3"),
    pytest.param("=v1.2.3", "1.2.3", ["1.2.3"], ["1.2.4"], id="=v1.2.3"),
    pytest.param("= 1.2.3", "1.2.3", ["1.2.3"], ["1.2.4"], id="= 1.2.3"),
    pytest.param(" =1.2.3 ", "1.2.3", ["1.2.3"], ["1.2.4"], id="=1.2.3 with whitespace"),
    pytest.param("=1.2.3-rc.1", "1.2.3-rc.1", ["1.2.3-rc.1"], ["1.2.3"], id="=prerelease"),
    pytest.param("=1.2.3 || =2.0.0", "1.2.3||2.0.0", ["1.2.3", "2.0.0"], ["1.2.4"], id="= in a union"),
    pytest.param(">=1.2.3", ">=1.2.3", ["1.2.3", "v1.2.3", "1.2.4", "2.0.0"], ["1.2.2", "1.2.3-rc.1"], id=">=1.2.3"),
    pytest.param(">= 1.2.3", ">=1.2.3", ["1.2.3"], ["1.2.2"], id=">= 1.2.3"),
    pytest.param(">=v1.2.3", ">=1.2.3", ["1.2.3"], ["1.2.2"], id=">=v1.2.3"),
]


@pytest.mark.parametrize("text, desugared, admitted, refused", EQUALS_IN_RANGES)
def test_equals_operator_in_ranges(
    text: str, desugared: str, admitted: list[str], refused: list[str]
) -> None:
    version_range = VersionRange(text)
    assert str(version_range) == desugared
    assert [version_range.contains(v) for v in admitted] == [True] * len(admitted)
    assert [version_range.contains(v) for v in refused] == [False] * len(refused)


def test_range_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        VersionRange(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Length limits and pathological input
# ---------------------------------------------------------------------------


def test_range_length_limit() -> None:
    assert VersionRange("1.2.3" + " " * 251).contains("1.2.3")  # exactly 256
    too_long = ">=1.0.0 " * 40
    with pytest.raises(ValueError) as raised:
        VersionRange(too_long)
    message = str(raised.value)
    assert message.startswith("invalid version range '>=1.0.0 >=1.0.0")
    assert "(320 characters): longer than 256 characters" in message


def test_version_length_limit() -> None:
    with pytest.raises(ValueError, match=r"\(257 characters\): longer than 256 characters$"):
        Version.parse("1.2.3-" + "a" * 251)


def test_context_length_limit() -> None:
    with pytest.raises(ValueError, match="longer than 256 characters"):
        VersionContext("1" * 300)


def _pathological_inputs() -> list[str]:
    def fill(unit: str, size: int = 256) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    units = ["1", "0", "v", "=", " ", "~", "^", "<", ">=", "1.", "x.", "*", "-", "a", "1a", "+a",
             ".", "||", " - ", "1 - ", "1.2.3 ", "1.2.3-", "1.2.3-a.", "> ", "v1", "-1", "v ", "= "]
    inputs = [fill(unit) for unit in units]
    inputs += ["1.2.3-" + fill("1", 249) + "!", "1.2.3-" + fill("0a.", 250), fill("v=", 250) + "1.2.3"]
    rng = random.Random(0)
    inputs += ["".join(rng.choice("0123456789.-+xX*v= <>~^|az") for _ in range(256)) for _ in range(100)]
    return inputs


def test_pathological_input_is_fast() -> None:
    start = time.perf_counter()
    for text in _pathological_inputs():
        for parse in (VersionRange, Version.parse, VersionContext):
            try:
                parse(text)
            except ValueError:
                pass
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------
# VersionContext
# ---------------------------------------------------------------------------

CONTEXT_FIELDS = [
    pytest.param("2.1.0", "2.1.0", "2.1.0", 2, id="exact version"),
    pytest.param(" v2.1.0 ", "2.1.0", "2.1.0", 2, id="exact with v and whitespace"),
    pytest.param("=2.1.0", "2.1.0", "2.1.0", 2, id="exact with ="),
    pytest.param(" =v2.1.0 ", "2.1.0", "2.1.0", 2, id="exact with =v and whitespace"),
    pytest.param("=2.1.0-rc.1", "2.1.0-rc.1", "2.1.0-rc.1", 2, id="exact prerelease with ="),
    pytest.param("2.1.0+build.7", "2.1.0+build.7", "2.1.0", 2, id="exact with build"),
    pytest.param("2.1.0-beta.1", "2.1.0-beta.1", "2.1.0-beta.1", 2, id="exact prerelease"),
    pytest.param("^2.1", None, ">=2.1.0 <3.0.0-0", 2, id="caret"),
    pytest.param("~2.1", None, ">=2.1.0 <2.2.0-0", 2, id="tilde"),
    pytest.param("2.x", None, ">=2.0.0 <3.0.0-0", 2, id="x-range"),
    pytest.param("^2", None, ">=2.0.0 <3.0.0-0", 2, id="caret major"),
    pytest.param(">1.x", None, ">=2.0.0", 2, id="greater than 1.x"),
    pytest.param(">=2.1.0-rc.1 <3", None, ">=2.1.0-rc.1 <3.0.0-0", 2, id="prerelease lower bound"),
    pytest.param("^0.2.3", None, ">=0.2.3 <0.3.0-0", 0, id="caret zero major"),
    pytest.param(">=1.0.0", None, ">=1.0.0", 1, id="open range: lower bound major"),
    pytest.param("1 - 3", None, ">=1.0.0 <4.0.0-0", 1, id="hyphen spanning majors"),
    pytest.param("^1 || ^3", None, ">=1.0.0 <2.0.0-0||>=3.0.0 <4.0.0-0", 1, id="union: lowest major"),
    pytest.param("^3 || ^1", None, ">=3.0.0 <4.0.0-0||>=1.0.0 <2.0.0-0", 1, id="union order irrelevant"),
    pytest.param(">1.9.9 <3", None, ">1.9.9 <3.0.0-0", 1, id="exclusive bound inside major 1"),
    pytest.param(">1.9.9-rc <2.0.0", None, ">1.9.9-rc <2.0.0", 1, id="exclusive prerelease bound"),
    pytest.param("*", None, "*", 0, id="any: 0.0.0 is lowest"),
    pytest.param("<3", None, "<3.0.0-0", 0, id="no lower bound"),
    pytest.param(">=0.0.0-0", None, ">=0.0.0-0", 0, id="lowest possible version"),
    pytest.param(">2 <1", None, ">=3.0.0 <1.0.0-0", None, id="empty range has no major"),
    pytest.param("<0.0.0-0", None, "<0.0.0-0", None, id="null set has no major"),
]


@pytest.mark.parametrize("raw, exact, desugared, major", CONTEXT_FIELDS)
def test_context_fields(raw: str, exact: str | None, desugared: str, major: int | None) -> None:
    context = VersionContext(raw)
    assert context.raw == raw.strip()
    if exact is None:
        assert context.version is None
    else:
        assert context.version is not None
        assert (str(context.version), context.version.build) == (exact, Version.parse(exact).build)
    assert str(context.range) == desugared
    assert context.major == major


CONTEXT_COMPATIBILITY = [
    pytest.param("^2.1", "2.3.0", True, id="caret: inside"),
    pytest.param("^2.1", "2.0.9", False, id="caret: below"),
    pytest.param("^2.1", "3.0.0", False, id="caret: next major"),
    pytest.param("^2.1", "2.1.5-beta", False, id="caret: prerelease not named"),
    pytest.param("~2.1", "2.1.5", True, id="tilde: inside"),
    pytest.param("~2.1", "2.2.0", False, id="tilde: next minor"),
    pytest.param("2.x", "2.9.0", True, id="x-range: inside"),
    pytest.param("2.x", "1.9.0", False, id="x-range: previous major"),
    pytest.param("2.1.0", "2.1.0", True, id="exact: same"),
    pytest.param("2.1.0", "v2.1.0+build.9", True, id="exact: build ignored"),
    pytest.param("2.1.0", "2.1.1", False, id="exact: other patch"),
    pytest.param("=2.1.0", "2.1.0", True, id="exact with =: same"),
    pytest.param("=2.1.0", "2.1.1", False, id="exact with =: other patch"),
    pytest.param("2.1.0-beta", "2.1.0-beta", True, id="exact prerelease: same"),
    pytest.param("2.1.0-beta", "2.1.0", False, id="exact prerelease: its release"),
    pytest.param(">=1.0.0", "1.5.0", True, id="open range: lower major"),
    pytest.param(">=1.0.0", "2.0.0", False, id="open range: higher major"),
    pytest.param("1 - 3", "1.2.0", True, id="hyphen: lowest major"),
    pytest.param("1 - 3", "3.0.0", False, id="hyphen: in range, other major"),
    pytest.param("^1 || ^3", "1.2.0", True, id="union: lowest major"),
    pytest.param("^1 || ^3", "3.1.0", False, id="union: other operand's major"),
    pytest.param("*", "0.5.0", True, id="any: major 0"),
    pytest.param("*", "1.0.0", False, id="any: major 1"),
    pytest.param("<3", "0.1.0", True, id="no lower bound: major 0"),
    pytest.param("<3", "2.0.0", False, id="no lower bound: major 2"),
    pytest.param(">=2.1.0-rc.1 <3", "2.1.0-rc.2", True, id="named prerelease"),
    pytest.param(">=2.1.0-rc.1 <3", "2.1.0", True, id="release after prerelease bound"),
    pytest.param(">2 <1", "2.0.0", False, id="empty range"),
]


@pytest.mark.parametrize("raw, candidate, expected", CONTEXT_COMPATIBILITY)
def test_context_is_compatible(raw: str, candidate: str, expected: bool) -> None:
    context = VersionContext(raw)
    assert context.is_compatible(candidate) is expected
    assert context.is_compatible(Version.parse(candidate)) is expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("2.x.banana", id="junk after x-range"),
        pytest.param(">=1.2.3.4", id="four numbers"),
        pytest.param("latest", id="dist tag"),
    ],
)
def test_context_invalid(raw: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid version range {raw!r}"):
        VersionContext(raw)


def test_context_invalid_candidate() -> None:
    with pytest.raises(ValueError, match=r"^invalid version '2\.1'"):
        VersionContext("^2").is_compatible("2.1")


def test_context_is_frozen_and_compares_by_raw() -> None:
    context = VersionContext(" ^2.1 ")
    assert context == VersionContext("^2.1")
    assert hash(context) == hash(VersionContext("^2.1"))
    assert context != VersionContext("~2.1")
    assert repr(context) == "VersionContext(raw='^2.1')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.raw = "^3"  # type: ignore[misc]


def test_context_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        VersionContext(2)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Documentation examples
# ---------------------------------------------------------------------------


def test_doctests() -> None:
    result = doctest.testmod(version_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
