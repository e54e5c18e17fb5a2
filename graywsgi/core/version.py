"""Versions and version ranges
=============================

This module parses `Semantic Versioning 2.0.0 <https://semver.org>`_ versions
and evaluates version ranges with exactly the rules of the npm ``semver``
package (node-semver 7, default options: ``loose=false``,
``includePrerelease=false``), so that a gray-release rule such as
``^2.1.0`` admits the same client versions here as it would in ``npm``.

Three public classes:

:class:`Version`
    One SemVer 2.0.0 version. Immutable, hashable and totally ordered by
    SemVer precedence (§11). Build metadata is kept but ignored by ``==``,
    ``hash()`` and ordering, so ``1.0.0+a == 1.0.0+b``.

:class:`VersionRange`
    A node-semver range such as ``>=1.2.7 <1.3.0 || ^2``. Supports
    ``||`` unions, space-separated (AND-ed) comparators, the primitive
    operators ``<``, ``<=``, ``>``, ``>=``, ``=``, X-ranges (``1.x``, ``1.2.*``,
    ``1``, ``*``), tilde (``~1.2.3``, ``~>1.2``), caret (``^0.2.3``) and hyphen
    ranges (``1.2 - 2.3.4``). :meth:`VersionRange.contains` answers what
    ``semver.satisfies(version, range)`` answers.

:class:`VersionContext`
    The version requirement of one release channel, given as an exact
    version or a range, with :meth:`VersionContext.is_compatible` to check
    a client version against it and its major version.

Version text
------------
Versions are read as node-semver's ``valid()`` reads them (``loose=false``):
one leading ``v`` is allowed (``v1.2.3``), a leading ``=`` is not
(``=1.2.3``). ``=`` is a comparator operator, so it belongs to ranges:
``VersionRange("=1.2.3")`` admits exactly ``1.2.3``. node-semver accepts
``=1.2.3`` as a version only with ``loose: true``, which this module does
not offer. :class:`VersionContext`, which takes a version or a range, reads
``=2.1.0`` as the range admitting only ``2.1.0`` and so as that exact version.

Prerelease versions
-------------------
As in node-semver, a version with a prerelease tag (``1.2.4-beta``) only
satisfies a comparator set when every comparator matches *and* some
comparator of that set itself names a prerelease of the same
``major.minor.patch``. So ``^1.2.3`` does not admit ``1.2.4-beta``, but
``^1.2.3-beta.2`` admits ``1.2.3-beta.4`` (and not ``1.2.4-beta``). The ``-0``
upper bounds that desugaring produces (``^1.2.3`` is ``>=1.2.3 <2.0.0-0``)
never let a prerelease through, because no prerelease below ``2.0.0-0`` has
the tuple ``2.0.0``.

Differences from node-semver
----------------------------
- Range text longer than 256 characters is rejected (node-semver limits only
  version text to 256 characters). This bounds the work done on untrusted
  input; every regular expression here runs in at most quadratic time on it.
- An invalid version given as text to :meth:`VersionRange.contains` raises
  :class:`ValueError`, where ``semver.satisfies`` returns ``false``.
- Numeric prerelease identifiers are Python integers of any size, compared
  exactly; node-semver compares them as JavaScript numbers.
- Everything else, including node-semver's oddities (``1.2.3 ||`` admits
  every release; ``* || 1.2.3-beta`` does not admit ``1.2.3-beta``; build
  metadata is dropped from range text wherever it appears), is kept on
  purpose so that ranges mean what they mean in npm.

Example
-------
>>> Version.parse("v1.4.0-rc.1") < Version.parse("1.4.0")
True
>>> "1.4.2" in VersionRange("^1.2.3")
True
>>> str(VersionRange("~1.2 || 2.x"))
'>=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0'
>>> VersionContext("^2.1").is_compatible("2.5.0")
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = ["Version", "VersionContext", "VersionRange"]

#: Longest version or range text accepted (node-semver's ``MAX_LENGTH``).
MAX_LENGTH: Final = 256
#: Largest major/minor/patch number accepted by :meth:`Version.parse`
#: (JavaScript's ``Number.MAX_SAFE_INTEGER``, as in node-semver).
MAX_SAFE_INTEGER: Final = 2**53 - 1

# Whitespace as JavaScript's ``\s`` and ``String.prototype.trim`` see it.
_WS_CHARS: Final = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_WS_CLASS: Final = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WS: Final = f"[{_WS_CLASS}]"

# The grammar pieces of node-semver's internal/re.js (strict variants), with
# ``\d`` spelled ``[0-9]`` (Python's ``\d`` also matches non-ASCII digits)
# and ``\s*`` / ``\s+`` bounded to one character as in node's ``safeRe``.
_NUM: Final = r"0|[1-9][0-9]*"
_PRE_ID: Final = rf"(?:[0-9]*[a-zA-Z-][a-zA-Z0-9-]*|{_NUM})"
_PRERELEASE: Final = rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))"
_BUILD_ID: Final = r"[a-zA-Z0-9-]+"
_BUILD: Final = rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))"
_FULL_PLAIN: Final = rf"v?({_NUM})\.({_NUM})\.({_NUM}){_PRERELEASE}?{_BUILD}?"
_X_ID: Final = rf"{_NUM}|x|X|\*"
_X_PLAIN: Final = (
    rf"[v={_WS_CLASS}]*({_X_ID})"
    rf"(?:\.({_X_ID})(?:\.({_X_ID})(?:{_PRERELEASE})?{_BUILD}?)?)?"
)
_GTLT: Final = r"((?:<|>)?=?)"

_FULL_RE: Final = re.compile(_FULL_PLAIN)
_IDENT_RE: Final = re.compile(r"[0-9A-Za-z-]+")
_NUMERIC_RE: Final = re.compile(r"[0-9]+")
_CANONICAL_NUMBER_RE: Final = re.compile(_NUM)
_SPACES_RE: Final = re.compile(f"{_WS}+")
_BUILD_RE: Final = re.compile(_BUILD)
_HYPHEN_RE: Final = re.compile(rf"{_WS}?({_X_PLAIN}){_WS}-{_WS}({_X_PLAIN}){_WS}?")
_TILDE_TRIM_RE: Final = re.compile(rf"({_WS}?)~>?{_WS}")
_CARET_TRIM_RE: Final = re.compile(rf"({_WS}?)\^{_WS}")
_TILDE_RE: Final = re.compile(rf"~>?{_X_PLAIN}")
_CARET_RE: Final = re.compile(rf"\^{_X_PLAIN}")
_XRANGE_RE: Final = re.compile(rf"{_GTLT}{_WS}?{_X_PLAIN}")
_STAR_RE: Final = re.compile(rf"(?:<|>)?=?{_WS}?\*")
_GTE0_RE: Final = re.compile(rf"{_WS}?>={_WS}?0\.0\.0{_WS}?")
_COMPARATOR_RE: Final = re.compile(rf"{_GTLT}{_WS}?({_FULL_PLAIN})|")

_NULL_SET: Final = "<0.0.0-0"


def _trim(text: str) -> str:
    return text.strip(_WS_CHARS)


def _split_ws(text: str) -> list[str]:
    """JavaScript's ``text.split(/\\s+/)``."""
    return _SPACES_RE.split(text)


def _shorten(text: str) -> str:
    """``repr`` of *text*, cut short when it is too long to quote whole."""
    if len(text) <= MAX_LENGTH:
        return repr(text)
    return f"{text[:40]!r}... ({len(text)} characters)"


class _InvalidError(ValueError):
    """Raised inside the range pipeline; re-raised with the range text."""


# ---------------------------------------------------------------------------
# Version
# ---------------------------------------------------------------------------


# Sort key of a prerelease identifier: numbers before (and below) strings.
_IdentifierKey = tuple[int, int, str]
# Sort key of a version: a release sorts after all its prereleases.
_VersionKey = tuple[int, int, int, int, tuple[_IdentifierKey, ...]]


def _identifier_key(identifier: int | str) -> _IdentifierKey:
    if isinstance(identifier, int):
        return (0, identifier, "")
    return (1, 0, identifier)


@dataclass(frozen=True, eq=False, slots=True)
class Version:
    """One `SemVer 2.0.0 <https://semver.org>`_ version.

    Instances are immutable, hashable and totally ordered by SemVer
    precedence (semver.org §11): numeric ``major.minor.patch`` first, a
    prerelease version is lower than its release, and prerelease identifiers
    compare one by one (numbers numerically and below alphanumerics, which
    compare in ASCII order; a longer list wins a tie).

    Build metadata is kept and printed but, as §10 requires, plays no part in
    precedence. ``==`` and :func:`hash` follow precedence too, so two versions
    that differ only in build metadata are equal.

    :ivar major: Major version number.
    :ivar minor: Minor version number.
    :ivar patch: Patch version number.
    :ivar prerelease: Prerelease identifiers: :class:`int` for numeric ones,
        :class:`str` otherwise; empty for a release.
    :ivar build: Build metadata identifiers; empty when there are none.
    :raises ValueError: if a number is negative or an identifier is not valid
        SemVer (an all-digit prerelease string is converted to :class:`int`,
        unless it has a leading zero).
    :raises TypeError: if a field has the wrong type.

    >>> v = Version.parse("1.2.3-beta.2+exp.sha.5114f85")
    >>> v.major, v.prerelease, v.build
    (1, ('beta', 2), ('exp', 'sha', '5114f85'))
    >>> str(v)
    '1.2.3-beta.2+exp.sha.5114f85'
    >>> Version(1, 2, 3, ("beta", 11)) > v
    True
    >>> v == Version.parse("1.2.3-beta.2")
    True
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: tuple[str, ...] = ()
    _key: _VersionKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("major", "minor", "patch"):
            number = getattr(self, name)
            if not isinstance(number, int) or isinstance(number, bool):
                raise TypeError(f"Version.{name} must be an int, not {type(number).__name__}")
            if number < 0:
                raise ValueError(f"Version.{name} must not be negative, got {number}")
        prerelease = tuple(_check_prerelease_identifier(i) for i in self.prerelease)
        build = tuple(_check_build_identifier(i) for i in self.build)
        object.__setattr__(self, "prerelease", prerelease)
        object.__setattr__(self, "build", build)
        key: _VersionKey = (
            self.major,
            self.minor,
            self.patch,
            0 if prerelease else 1,
            tuple(_identifier_key(i) for i in prerelease),
        )
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a SemVer 2.0.0 version string.

        Accepts what node-semver's ``valid()`` accepts (``loose=false``):
        surrounding whitespace is ignored, and so is one leading ``v``. A
        leading ``=`` is rejected, as node-semver rejects it outside ranges
        and loose mode: ``=`` is a comparator operator, for
        :class:`VersionRange`. Numbers must not have leading zeros and must
        not exceed :data:`MAX_SAFE_INTEGER`.

        :param text: The version, e.g. ``"1.2.3"``, ``"v2.0.0-rc.1+build.7"``.
        :returns: The parsed version.
        :raises ValueError: if *text* is not a valid version or is longer than
            :data:`MAX_LENGTH` characters; the message quotes *text*.
        :raises TypeError: if *text* is not a :class:`str`.

        >>> Version.parse(" v1.2.3 ")
        Version.parse('1.2.3')
        >>> Version.parse("=1.2.3")
        Traceback (most recent call last):
          ...
        ValueError: invalid version '=1.2.3': a leading '=' is a range operator (VersionRange), not part of a version
        """
        if not isinstance(text, str):
            raise TypeError(f"version must be a str, not {type(text).__name__}")
        body = _trim(text)
        try:
            if body.startswith("=") and len(text) <= MAX_LENGTH:
                raise _InvalidError(
                    "a leading '=' is a range operator (VersionRange), not part of a version"
                )
            return _parse_semver(text, body)
        except _InvalidError as error:
            raise ValueError(f"invalid version {_shorten(text)}: {error}") from None

    def __str__(self) -> str:
        text = self._core()
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version.parse({str(self)!r})"

    def _core(self) -> str:
        """The version without build metadata (node-semver's ``.version``)."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(i) for i in self.prerelease)
        return text

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key


def _check_prerelease_identifier(identifier: int | str) -> int | str:
    if isinstance(identifier, bool) or not isinstance(identifier, (int, str)):
        raise TypeError(
            f"prerelease identifiers must be int or str, not {type(identifier).__name__}"
        )
    if isinstance(identifier, int):
        if identifier < 0:
            raise ValueError(f"numeric prerelease identifier must not be negative, got {identifier}")
        return identifier
    if not _IDENT_RE.fullmatch(identifier):
        raise ValueError(f"invalid prerelease identifier {identifier!r}")
    if _NUMERIC_RE.fullmatch(identifier):
        if not _CANONICAL_NUMBER_RE.fullmatch(identifier):
            raise ValueError(f"numeric prerelease identifier {identifier!r} has a leading zero")
        return int(identifier)
    return identifier


def _check_build_identifier(identifier: str) -> str:
    if not isinstance(identifier, str):
        raise TypeError(f"build identifiers must be str, not {type(identifier).__name__}")
    if not _IDENT_RE.fullmatch(identifier):
        raise ValueError(f"invalid build identifier {identifier!r}")
    return identifier


def _parse_semver(text: str, body: str) -> Version:
    """node-semver's ``new SemVer(text)``, applied to the trimmed *body*.

    :raises _InvalidError: with the reason why *text* is not a version.
    """
    if len(text) > MAX_LENGTH:
        raise _InvalidError(f"longer than {MAX_LENGTH} characters")
    match = _FULL_RE.fullmatch(body)
    if match is None:
        raise _InvalidError(
            "not a SemVer 2.0.0 version MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] "
            "(numbers without leading zeros)"
        )
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    for name, number in (("major", major), ("minor", minor), ("patch", patch)):
        if number > MAX_SAFE_INTEGER:
            raise _InvalidError(f"{name} version {number} is larger than {MAX_SAFE_INTEGER}")
    pre, build = match.group(4), match.group(5)
    return Version(
        major,
        minor,
        patch,
        tuple(pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )


# ---------------------------------------------------------------------------
# Range desugaring: a port of node-semver's classes/range.js pipeline
# ---------------------------------------------------------------------------


def _is_x(part: str | None) -> bool:
    return not part or part.lower() == "x" or part == "*"


def _replace_caret(comp: str) -> str:
    # ^1.2.3 := >=1.2.3 <2.0.0-0, ^0.2.3 := >=0.2.3 <0.3.0-0,
    # ^0.0.3 := >=0.0.3 <0.0.4-0, ^1.x := >=1.0.0 <2.0.0-0, ^* := any
    match = _CARET_RE.fullmatch(comp)
    if match is None:
        return comp
    major, minor, patch, pre = match.group(1, 2, 3, 4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if _is_x(patch):
        if major == "0":
            return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
        return f">={major}.{minor}.0 <{int(major) + 1}.0.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    if major == "0":
        if minor == "0":
            return f"{low} <{major}.{minor}.{int(patch) + 1}-0"
        return f"{low} <{major}.{int(minor) + 1}.0-0"
    return f"{low} <{int(major) + 1}.0.0-0"


def _replace_tilde(comp: str) -> str:
    # ~1.2.3 := >=1.2.3 <1.3.0-0, ~1.2 := >=1.2.0 <1.3.0-0,
    # ~1 := >=1.0.0 <2.0.0-0, ~* := any
    match = _TILDE_RE.fullmatch(comp)
    if match is None:
        return comp
    major, minor, patch, pre = match.group(1, 2, 3, 4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if _is_x(patch):
        return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    return f"{low} <{major}.{int(minor) + 1}.0-0"


def _replace_xrange(comp: str) -> str:
    # 1.x := >=1.0.0 <2.0.0-0, >1.2 := >=1.3.0, <=1.x := <2.0.0-0,
    # <1 := <1.0.0-0, >* / <* := nothing, * := any
    comp = _trim(comp)
    match = _XRANGE_RE.fullmatch(comp)
    if match is None:
        return comp
    gtlt, major, minor, patch = match.group(1, 2, 3, 4)
    if (_is_x(major) and not _is_x(minor)) or (_is_x(minor) and patch and not _is_x(patch)):
        return comp  # "x.1", "1.x.2": left for the comparator parser to reject
    x_major = _is_x(major)
    x_minor = x_major or _is_x(minor)
    any_x = x_minor or _is_x(patch)
    if gtlt == "=" and any_x:
        gtlt = ""
    if x_major:
        return _NULL_SET if gtlt in (">", "<") else "*"
    if gtlt and any_x:
        new_major, new_minor = int(major), 0 if x_minor else int(minor)
        pre = ""
        if gtlt == ">":
            gtlt = ">="
            if x_minor:
                new_major += 1
            else:
                new_minor += 1
        elif gtlt == "<=":
            gtlt = "<"
            if x_minor:
                new_major += 1
            else:
                new_minor += 1
        if gtlt == "<":
            pre = "-0"
        return f"{gtlt}{new_major}.{new_minor}.0{pre}"
    if x_minor:
        return f">={major}.0.0 <{int(major) + 1}.0.0-0"
    if any_x:
        return f">={major}.{minor}.0 <{major}.{int(minor) + 1}.0-0"
    return comp


def _replace_hyphen(match: re.Match[str]) -> str:
    # 1.2.3 - 2.3.4 := >=1.2.3 <=2.3.4, 1.2 - 2.3.4 := >=1.2.0 <=2.3.4,
    # 1.2.3 - 2.3 := >=1.2.3 <2.4.0-0, 1.2.3 - 2 := >=1.2.3 <3.0.0-0
    low_text, low_major, low_minor, low_patch = match.group(1, 2, 3, 4)
    high_text, high_major, high_minor, high_patch, high_pre = match.group(7, 8, 9, 10, 11)
    if _is_x(low_major):
        low = ""
    elif _is_x(low_minor):
        low = f">={low_major}.0.0"
    elif _is_x(low_patch):
        low = f">={low_major}.{low_minor}.0"
    else:
        low = f">={low_text}"
    if _is_x(high_major):
        high = ""
    elif _is_x(high_minor):
        high = f"<{int(high_major) + 1}.0.0-0"
    elif _is_x(high_patch):
        high = f"<{high_major}.{int(high_minor) + 1}.0-0"
    elif high_pre:
        high = f"<={high_major}.{high_minor}.{high_patch}-{high_pre}"
    else:
        high = f"<={high_text}"
    return _trim(f"{low} {high}")


def _desugar(comp: str) -> str:
    """node-semver's ``parseComparator``: one word to primitive comparators."""
    comp = _BUILD_RE.sub("", comp, count=1)
    comp = " ".join(_replace_caret(c) for c in _split_ws(_trim(comp)))
    comp = " ".join(_replace_tilde(c) for c in _split_ws(_trim(comp)))
    comp = " ".join(_replace_xrange(c) for c in _split_ws(comp))
    return _STAR_RE.sub("", _trim(comp), count=1)


# -- node-semver's internal/trim-comparator-whitespace.js: "> 1.2.3" -> ">1.2.3"


def _char(text: str, index: int) -> str:
    return text[index] if index < len(text) else ""


def _is_ws(char: str) -> bool:
    return char != "" and char in _WS_CHARS


def _is_digit(char: str) -> bool:
    return char != "" and "0" <= char <= "9"


def _is_letter(char: str) -> bool:
    return char != "" and ("a" <= char <= "z" or "A" <= char <= "Z")


def _is_ident_char(char: str) -> bool:
    return _is_digit(char) or _is_letter(char) or char == "-"


def _is_version_prefix(char: str) -> bool:
    return char in ("v", "=") or _is_ws(char)


def _is_version_start(char: str) -> bool:
    return _is_digit(char) or char in ("x", "X", "*")


def _digits_end(text: str, start: int, limit: int) -> int:
    end = start
    while _is_digit(_char(text, end)):
        end += 1
    return min(start + limit, end)


def _number_end(text: str, start: int, loose: bool) -> int:
    if not loose and _char(text, start) == "0":
        return start + 1
    return _digits_end(text, start, MAX_LENGTH if loose else MAX_LENGTH + 1)


def _pre_identifier_end(text: str, start: int, loose: bool) -> int:
    digits_end = _digits_end(text, start, MAX_LENGTH)
    char = _char(text, digits_end)
    if _is_letter(char) or char == "-":
        end = digits_end + 1
        limit = end + MAX_LENGTH - 6
        while end < limit and _is_ident_char(_char(text, end)):
            end += 1
        return end
    return _number_end(text, start, loose)


def _prerelease_end(text: str, start: int, loose: bool) -> int:
    hyphen = _char(text, start) == "-"
    if not loose and not hyphen:
        return start
    ident_start = start + (1 if hyphen else 0)
    end = _pre_identifier_end(text, ident_start, loose)
    if end == ident_start:
        if not loose or not hyphen:
            return start
        end = _pre_identifier_end(text, start, loose)
    while _char(text, end) == ".":
        following = _pre_identifier_end(text, end + 1, loose)
        if following == end + 1:
            break
        end = following
    return end


def _build_identifier_end(text: str, start: int) -> int:
    end = start
    while end - start < MAX_LENGTH - 6 and _is_ident_char(_char(text, end)):
        end += 1
    return end


def _build_end(text: str, start: int) -> int:
    if _char(text, start) != "+":
        return start
    end = _build_identifier_end(text, start + 1)
    if end == start + 1:
        return start
    while _char(text, end) == ".":
        following = _build_identifier_end(text, end + 1)
        if following == end + 1:
            break
        end = following
    return end


def _loose_full_version_end(text: str, start: int) -> int:
    end = start
    for component in range(3):
        following = _number_end(text, end, True)
        if following == end:
            return start
        end = following
        if component < 2:
            if _char(text, end) != ".":
                return start
            end += 1
    return _build_end(text, _prerelease_end(text, end, True))


def _partial_component_end(text: str, start: int) -> int:
    char = _char(text, start)
    if _is_digit(char):
        return _number_end(text, start, False)
    return start + 1 if _is_version_start(char) else start


def _partial_version_end(text: str, start: int) -> int:
    end = _partial_component_end(text, start)
    for _ in range(2):
        if _char(text, end) != ".":
            return end
        following = _partial_component_end(text, end + 1)
        if following == end + 1:
            return end
        end = following
    return _build_end(text, _prerelease_end(text, end, False))


def _removable_whitespace(text: str, match_start: int) -> int:
    position = match_start
    if _is_ws(_char(text, position)):
        position += 1
    if _char(text, position) in ("<", ">"):
        position += 1
    if _char(text, position) == "=":
        position += 1
    return position if _is_ws(_char(text, position)) else -1


def _trim_comparator_whitespace(text: str) -> str:
    pieces: list[str] = []
    copy_from = cursor = 0
    while cursor < len(text):
        match_start = cursor
        if text[cursor] in ("<", ">"):
            cursor += 1
        elif not (_is_version_prefix(text[cursor]) or _is_version_start(text[cursor])):
            cursor += 1
            continue
        while cursor < len(text) and _is_version_prefix(text[cursor]):
            cursor += 1
        if not _is_version_start(_char(text, cursor)):
            continue
        whitespace = _removable_whitespace(text, match_start)
        if whitespace != -1:
            pieces.append(text[copy_from:whitespace])
            copy_from = whitespace + 1
        full_end = _loose_full_version_end(text, cursor)
        cursor = full_end if full_end != cursor else _partial_version_end(text, cursor)
    pieces.append(text[copy_from:])
    return "".join(pieces)


# -- comparators and comparator sets


class _Comparator(NamedTuple):
    """A primitive comparator; ``version is None`` means "any version"."""

    operator: str  # "", "<", "<=", ">", ">="
    version: Version | None

    @property
    def text(self) -> str:
        if self.version is None:
            return ""
        return self.operator + self.version._core()

    def test(self, version: Version) -> bool:
        if self.version is None:
            return True
        if self.operator == "":
            return version == self.version
        if self.operator == "<":
            return version < self.version
        if self.operator == "<=":
            return version <= self.version
        if self.operator == ">":
            return version > self.version
        return version >= self.version


def _parse_comparator(text: str) -> _Comparator:
    text = " ".join(_split_ws(_trim(text)))
    match = _COMPARATOR_RE.fullmatch(text)
    if match is None:
        raise _InvalidError(f"invalid comparator {text!r}")
    operator = match.group(1) or ""
    version_text = match.group(2)
    if not version_text:
        return _Comparator("", None)
    try:
        version = _parse_semver(version_text, _trim(version_text))
    except _InvalidError as error:
        raise _InvalidError(f"invalid comparator {text!r}: {error}") from None
    return _Comparator("" if operator == "=" else operator, version)


_ComparatorSet = tuple[_Comparator, ...]


def _parse_comparator_set(text: str) -> _ComparatorSet:
    """node-semver's ``Range.parseRange``: one ``||`` operand to comparators."""
    text = _BUILD_RE.sub("", text)
    hyphen = _HYPHEN_RE.fullmatch(text)
    if hyphen is not None:
        text = _replace_hyphen(hyphen)
    text = _trim_comparator_whitespace(text)
    text = _TILDE_TRIM_RE.sub(lambda m: m.group(1) + "~", text)
    text = _CARET_TRIM_RE.sub(lambda m: m.group(1) + "^", text)
    words = _split_ws(" ".join(_desugar(word) for word in text.split(" ")))
    comparators = [
        _parse_comparator("" if _GTE0_RE.fullmatch(_trim(w)) else _trim(w)) for w in words
    ]
    unique: dict[str, _Comparator] = {}
    for comparator in comparators:
        if comparator.text == _NULL_SET:
            return (comparator,)
        unique.setdefault(comparator.text, comparator)
    if len(unique) > 1:
        unique.pop("", None)
    return tuple(unique.values())


def _test_set(comparators: _ComparatorSet, version: Version) -> bool:
    """node-semver's ``testSet`` (``includePrerelease=false``)."""
    if not all(comparator.test(version) for comparator in comparators):
        return False
    if not version.prerelease:
        return True
    # A prerelease is only admitted when a comparator of this set names a
    # prerelease of the same major.minor.patch.
    return any(
        c.version is not None
        and c.version.prerelease
        and (c.version.major, c.version.minor, c.version.patch)
        == (version.major, version.minor, version.patch)
        for c in comparators
    )


def _lowest_admitted(comparators: _ComparatorSet) -> Version | None:
    """The lowest version *comparators* admit, or None if they admit none.

    The admitted versions are an interval cut down by the prerelease rule, so
    the lowest one is the global minimum or just at or above some comparator's
    version: it is among the candidates tried here.
    """
    candidates = [Version(0, 0, 0, (0,)), Version(0, 0, 0)]
    for comparator in comparators:
        bound = comparator.version
        if bound is None:
            continue
        major, minor, patch = bound.major, bound.minor, bound.patch
        candidates += [
            bound,
            Version(major, minor, patch),
            Version(major, minor, patch, (0,)),
            Version(major, minor, patch + 1),
            Version(major, minor, patch + 1, (0,)),
        ]
        if bound.prerelease:
            candidates.append(Version(major, minor, patch, (*bound.prerelease, 0)))
    admitted = [c for c in candidates if _test_set(comparators, c)]
    return min(admitted) if admitted else None


# ---------------------------------------------------------------------------
# VersionRange
# ---------------------------------------------------------------------------


class VersionRange:
    """A node-semver version range, e.g. ``>=1.2.7 <1.3.0 || ^2.0.0``.

    The grammar and meaning are those of the npm ``semver`` package (v7,
    default options), including its desugaring of X-ranges, tilde, caret and
    hyphen ranges and its prerelease rule (see the module documentation).
    ``""``, ``*`` and ``x`` admit every release.

    :param text: The range text, at most :data:`MAX_LENGTH` characters.
    :raises ValueError: if *text* is not a valid range; the message quotes it.
    :raises TypeError: if *text* is not a :class:`str`.

    ``str()`` gives the desugared form (what ``semver.validRange`` returns),
    ``repr()`` the original text, also kept as :attr:`raw`.

    >>> r = VersionRange("^1.2.3-beta.2")
    >>> str(r)
    '>=1.2.3-beta.2 <2.0.0-0'
    >>> [v in r for v in ("1.2.3-beta.4", "1.9.0", "1.2.4-beta", "2.0.0")]
    [True, True, False, False]
    >>> VersionRange(">=1.2.3.4")
    Traceback (most recent call last):
      ...
    ValueError: invalid version range '>=1.2.3.4': invalid comparator '>=1.2.3.4'
    """

    __slots__ = ("_raw", "_sets")

    _raw: str
    _sets: tuple[_ComparatorSet, ...]

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"version range must be a str, not {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ValueError(
                f"invalid version range {_shorten(text)}: longer than {MAX_LENGTH} characters"
            )
        self._raw = text
        normalized = _SPACES_RE.sub(" ", _trim(text))
        try:
            sets = [_parse_comparator_set(_trim(part)) for part in normalized.split("||")]
        except _InvalidError as error:
            raise ValueError(f"invalid version range {text!r}: {error}") from None
        if len(sets) > 1:
            # Drop operands that admit nothing; an operand that admits any
            # release swallows the others (node-semver does both).
            useful = [s for s in sets if s[0].text != _NULL_SET] or sets[:1]
            sets = next(([s] for s in useful if len(s) == 1 and s[0].version is None), useful)
        self._sets = tuple(sets)

    @property
    def raw(self) -> str:
        """The range text exactly as given."""
        return self._raw

    def contains(self, version: Version | str) -> bool:
        """Whether *version* satisfies the range, as ``semver.satisfies`` says.

        :param version: A :class:`Version`, or text for :meth:`Version.parse`.
        :returns: True if some ``||`` operand admits *version*.
        :raises ValueError: if *version* is text that is not a valid version.
        """
        if isinstance(version, str):
            version = Version.parse(version)
        elif not isinstance(version, Version):
            raise TypeError(f"expected a Version or str, not {type(version).__name__}")
        return any(_test_set(comparators, version) for comparators in self._sets)

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, (Version, str)):
            raise TypeError(f"expected a Version or str, not {type(version).__name__}")
        return self.contains(version)

    def _lowest_admitted(self) -> Version | None:
        lowest = [v for s in self._sets if (v := _lowest_admitted(s)) is not None]
        return min(lowest) if lowest else None

    def __str__(self) -> str:
        text = "||".join(" ".join(c.text for c in comparators) for comparators in self._sets)
        return text or "*"

    def __repr__(self) -> str:
        return f"VersionRange({self._raw!r})"


# ---------------------------------------------------------------------------
# VersionContext
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionContext:
    """The version requirement of a release channel: one exact version or a range.

    :param raw: An exact version (``"2.1.0"``, ``"v2.1.0"``, ``"=2.1.0"``) or
        a :class:`VersionRange` text (``"^2.1"``, ``">=1.0.0 <3"``).
    :raises ValueError: if *raw* is neither; the message quotes it.

    :ivar raw: *raw* without surrounding whitespace.
    :ivar version: The exact version when :attr:`raw` is one
        (:meth:`Version.parse` accepts it) or is ``=`` directly followed by
        one (``=2.1.0``, ``=v2.1.0``: the range that admits only that
        version), else None.
    :ivar range: The range :attr:`raw` denotes; for an exact version, the
        range that admits exactly that version (``=version``).
    :ivar major: The major version compatible clients must have: the exact
        version's major, or else the major of the lowest version the range
        admits (None if it admits none). So ``^2``, ``~2.1``, ``2.x`` and
        ``>=2.1.0-rc.1 <3`` have major 2, ranges spanning several majors
        (``>=1.0.0``, ``1 - 3``, ``^1 || ^3``) take the lowest one (1), and
        ranges with no lower bound (``*``, ``<3``) admit ``0.0.0``, major 0.

    Two contexts are equal when their :attr:`raw` texts are.

    >>> ctx = VersionContext(" ^2.1 ")
    >>> ctx.raw, ctx.version, ctx.major
    ('^2.1', None, 2)
    >>> ctx.is_compatible("2.4.0"), ctx.is_compatible("2.0.9"), ctx.is_compatible("3.0.0")
    (True, False, False)
    >>> exact = VersionContext("v2.1.0")
    >>> exact.version, str(exact.range), exact.is_compatible("2.1.0+build.5")
    (Version.parse('2.1.0'), '2.1.0', True)
    """

    raw: str
    version: Version | None = field(init=False, repr=False, compare=False)
    range: VersionRange = field(init=False, repr=False, compare=False)
    major: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, str):
            raise TypeError(f"version context must be a str, not {type(self.raw).__name__}")
        raw = _trim(self.raw)
        try:
            version: Version | None = Version.parse(raw)
        except ValueError:
            version = None
            if raw.startswith("="):
                # "=2.1.0" is no version, but as a range it admits 2.1.0 alone.
                try:
                    version = _parse_semver(raw, raw[1:])
                except _InvalidError:
                    pass
        version_range = VersionRange(raw)
        if version is not None:
            major: int | None = version.major
        else:
            lowest = version_range._lowest_admitted()
            major = None if lowest is None else lowest.major
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "range", version_range)
        object.__setattr__(self, "major", major)

    def is_compatible(self, candidate: Version | str) -> bool:
        """Whether *candidate* is in the range and has the context's :attr:`major`.

        :param candidate: A :class:`Version`, or text for :meth:`Version.parse`.
        :returns: ``self.range.contains(candidate)`` and
            ``candidate.major == self.major``.
        :raises ValueError: if *candidate* is text that is not a valid version.
        """
        if isinstance(candidate, str):
            candidate = Version.parse(candidate)
        return self.range.contains(candidate) and candidate.major == self.major
