"""Tests for graywsgi.core.version_range: VersionRange, its desugared form and its errors.

The expected answers of the range, desugaring and invalid-range tables
were checked against the real npm ``semver`` package (7.8.6, default
options) before being written down here; most rows come from
node-semver's own test fixtures (range-include.js, range-exclude.js,
range-parse.js), the rest cover each construct of the module. Rows that
describe a documented difference from node-semver are kept in their own
tables.
"""

from __future__ import annotations

import pytest

from graywsgi.core.semver import Version
from graywsgi.core.version_range import VersionRange

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
# Length limits
# ---------------------------------------------------------------------------


def test_range_length_limit() -> None:
    assert VersionRange("1.2.3" + " " * 251).contains("1.2.3")  # exactly 256
    too_long = ">=1.0.0 " * 40
    with pytest.raises(ValueError) as raised:
        VersionRange(too_long)
    message = str(raised.value)
    assert message.startswith("invalid version range '>=1.0.0 >=1.0.0")
    assert "(320 characters): longer than 256 characters" in message
