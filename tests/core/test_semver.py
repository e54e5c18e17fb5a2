"""Tests for graywsgi.core.semver: Version parsing, construction and ordering.

The expected answers of the validity and ordering tables were checked
against the real npm ``semver`` package (7.8.6, default options) before
being written down here; most rows come from node-semver's own test
fixtures (comparisons.js, equality.js, valid-versions.js,
invalid-versions.js), the rest cover each construct of the module. Rows
that describe a documented difference from node-semver are kept in their
own tables.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from graywsgi.core.semver import Version

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
# Length limits
# ---------------------------------------------------------------------------


def test_version_length_limit() -> None:
    with pytest.raises(ValueError, match=r"\(257 characters\): longer than 256 characters$"):
        Version.parse("1.2.3-" + "a" * 251)
