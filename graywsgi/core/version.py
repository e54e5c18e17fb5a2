"""Versions and version ranges
=============================

This module parses `Semantic Versioning 2.0.0 <https://semver.org>`_ versions
and evaluates version ranges with exactly the rules of the npm ``semver``
package (node-semver 7, default options: ``loose=false``,
``includePrerelease=false``), so that a gray-release rule such as
``^2.1.0`` admits the same client versions here as it would in ``npm``.

Three public classes, all importable from here:

:class:`~graywsgi.core.semver.Version`
    One SemVer 2.0.0 version. Immutable, hashable and totally ordered by
    SemVer precedence (§11). Build metadata is kept but ignored by ``==``,
    ``hash()`` and ordering, so ``1.0.0+a == 1.0.0+b``. Defined in
    :mod:`graywsgi.core.semver`, with the text grammar versions and ranges
    share; its documentation says how version text is read.

:class:`~graywsgi.core.version_range.VersionRange`
    A node-semver range such as ``>=1.2.7 <1.3.0 || ^2``. Supports
    ``||`` unions, space-separated (AND-ed) comparators, the primitive
    operators ``<``, ``<=``, ``>``, ``>=``, ``=``, X-ranges (``1.x``, ``1.2.*``,
    ``1``, ``*``), tilde (``~1.2.3``, ``~>1.2``), caret (``^0.2.3``) and hyphen
    ranges (``1.2 - 2.3.4``).
    :meth:`~graywsgi.core.version_range.VersionRange.contains` answers what
    ``semver.satisfies(version, range)`` answers. Defined in
    :mod:`graywsgi.core.version_range` (with the prerelease rule and the
    differences from node-semver); the desugaring of tilde, caret, X- and
    hyphen ranges is :mod:`graywsgi.core.version_range_desugar`.

:class:`VersionContext`
    The version requirement of one release channel, given as an exact
    version or a range, with :meth:`VersionContext.is_compatible` to check
    a client version against it and its major version. Defined here.

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

from dataclasses import dataclass, field

from graywsgi.core.semver import MAX_LENGTH as MAX_LENGTH
from graywsgi.core.semver import MAX_SAFE_INTEGER as MAX_SAFE_INTEGER
from graywsgi.core.semver import Version, _InvalidError, _parse_semver, _trim
from graywsgi.core.version_range import VersionRange

__all__ = ["Version", "VersionContext", "VersionRange"]


@dataclass(frozen=True)
class VersionContext:
    """The version requirement of a release channel: one exact version or a range.

    :param raw: An exact version (``"2.1.0"``, ``"v2.1.0"``, ``"=2.1.0"``) or
        a :class:`~graywsgi.core.version_range.VersionRange` text (``"^2.1"``,
        ``">=1.0.0 <3"``).
    :raises ValueError: if *raw* is neither; the message quotes it.

    :ivar raw: *raw* without surrounding whitespace.
    :ivar version: The exact version when :attr:`raw` is one
        (:meth:`~graywsgi.core.semver.Version.parse` accepts it) or is ``=``
        directly followed by one (``=2.1.0``, ``=v2.1.0``: the range that
        admits only that version), else None.
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

        :param candidate: A :class:`~graywsgi.core.semver.Version`, or text for
            :meth:`~graywsgi.core.semver.Version.parse`.
        :returns: ``self.range.contains(candidate)`` and
            ``candidate.major == self.major``.
        :raises ValueError: if *candidate* is text that is not a valid version.
        """
        if isinstance(candidate, str):
            candidate = Version.parse(candidate)
        return self.range.contains(candidate) and candidate.major == self.major
