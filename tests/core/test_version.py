"""Tests for graywsgi.core.version: VersionContext, the doctests and input all three parsers share."""

from __future__ import annotations

import dataclasses
import doctest
import random
import time

import pytest

import graywsgi.core.version as version_module
from graywsgi.core.semver import Version
from graywsgi.core.version import VersionContext
from graywsgi.core.version_range import VersionRange

# ---------------------------------------------------------------------------
# Length limits and pathological input
# ---------------------------------------------------------------------------


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
