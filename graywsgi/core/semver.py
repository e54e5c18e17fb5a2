"""SemVer 2.0.0 versions
=======================

:class:`Version`, one `Semantic Versioning 2.0.0 <https://semver.org>`_
version, and the text grammar versions share with version ranges: the pieces
of node-semver's ``internal/re.js`` (strict variants), JavaScript's idea of
whitespace and the length limits. This is the lowest of the version modules:

- :mod:`graywsgi.core.version_range_desugar` rewrites ``^``, ``~``, X-ranges
  and hyphen ranges into primitive comparators;
- :mod:`graywsgi.core.version_range` holds
  :class:`~graywsgi.core.version_range.VersionRange`;
- :mod:`graywsgi.core.version` holds
  :class:`~graywsgi.core.version.VersionContext` and re-exports
  :class:`Version` and :class:`~graywsgi.core.version_range.VersionRange`
  (the documented import path of all three).

Version text
------------
Versions are read as node-semver's ``valid()`` reads them (``loose=false``):
one leading ``v`` is allowed (``v1.2.3``), a leading ``=`` is not
(``=1.2.3``). ``=`` is a comparator operator, so it belongs to ranges:
``VersionRange("=1.2.3")`` admits exactly ``1.2.3``. node-semver accepts
``=1.2.3`` as a version only with ``loose: true``, which this module does
not offer. :class:`~graywsgi.core.version.VersionContext`, which takes a
version or a range, reads ``=2.1.0`` as the range admitting only ``2.1.0``
and so as that exact version.

Numeric prerelease identifiers are Python integers of any size, compared
exactly; node-semver compares them as JavaScript numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Version", "MAX_LENGTH", "MAX_SAFE_INTEGER"]

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
        :class:`~graywsgi.core.version_range.VersionRange`. Numbers must not
        have leading zeros and must not exceed :data:`MAX_SAFE_INTEGER`.

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

