"""Version ranges
==============

:class:`VersionRange`, a node-semver range such as ``>=1.2.7 <1.3.0 || ^2``,
evaluated with exactly the rules of the npm ``semver`` package (node-semver
7, default options: ``loose=false``, ``includePrerelease=false``), so that a
gray-release rule such as ``^2.1.0`` admits the same client versions here as
it would in ``npm``. Its comparators and comparator sets live here too; the
desugaring of ``^``, ``~``, X-ranges and hyphen ranges into them is
:mod:`graywsgi.core.version_range_desugar`, the versions they compare are
:class:`~graywsgi.core.semver.Version`. Import it from
:mod:`graywsgi.core.version`, which re-exports it.

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
"""

from __future__ import annotations

from typing import NamedTuple

from graywsgi.core.semver import (
    MAX_LENGTH,
    _BUILD_RE,
    _CARET_TRIM_RE,
    _COMPARATOR_RE,
    _GTE0_RE,
    _HYPHEN_RE,
    _NULL_SET,
    _SPACES_RE,
    _TILDE_TRIM_RE,
    Version,
    _InvalidError,
    _parse_semver,
    _shorten,
    _split_ws,
    _trim,
)
from graywsgi.core.version_range_desugar import (
    _desugar,
    _replace_hyphen,
    _trim_comparator_whitespace,
)

__all__ = ["VersionRange"]


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

    :param text: The range text, at most :data:`~graywsgi.core.semver.MAX_LENGTH`
        characters.
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

        :param version: A :class:`~graywsgi.core.semver.Version`, or text for
            :meth:`~graywsgi.core.semver.Version.parse`.
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
