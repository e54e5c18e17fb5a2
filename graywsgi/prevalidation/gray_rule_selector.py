"""
Gray rule selectors (``applies_to``)
====================================

Which requests a gray rule applies to: :class:`Selector`, compiled from an
``applies_to`` value of ``x-gray-rules`` by :func:`compile_selector`, and
:func:`is_gray`, which says whether a request is gray traffic at all.
Versions are matched with :class:`~graywsgi.core.version_range.VersionRange`.
The rule form is described in :mod:`graywsgi.prevalidation.gray_rules`
(which re-exports these names); the compiled rules that carry a selector
are in :mod:`graywsgi.prevalidation.gray_rule_checks`.
"""

from __future__ import annotations

import functools
import typing as t

from graywsgi.core.context import GrayContext
from graywsgi.core.version import Version, VersionRange

__all__ = ["Selector", "compile_selector", "is_gray"]


@functools.lru_cache(maxsize=256)
def _parse_version(text: str) -> Version | None:
    try:
        return Version.parse(text)
    except ValueError:
        return None


class Selector:
    """Which requests a rule applies to. Immutable.

    - ``gray`` -- every gray request (see :func:`is_gray`);
    - ``all`` -- every request, gray or not;
    - a match -- gray requests whose ``X-Version`` equals a listed version
      or lies in a listed node-semver range, whose route is listed, or
      whose ``X-Traffic-Color`` is listed (any one is enough).
    """

    __slots__ = ("kind", "versions", "_exact", "_ranges", "routes", "colors")

    def __init__(
        self,
        kind: str,
        versions: t.Sequence[str] = (),
        routes: t.Iterable[str] = (),
        colors: t.Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self.versions = tuple(versions)
        self._exact = frozenset(self.versions)
        self._ranges = tuple(VersionRange(text) for text in self.versions)
        self.routes = frozenset(routes)
        self.colors = frozenset(color.lower() for color in colors)

    def applies(self, context: GrayContext | None, gray: bool) -> bool:
        """Whether a request with ``context`` (gray or not) is selected."""
        kind = self.kind
        if kind == "all":
            return True
        if not gray or context is None:
            return False
        if kind == "gray":
            return True
        if context.route is not None and context.route in self.routes:
            return True
        color = context.traffic_color
        if color is not None and color.lower() in self.colors:
            return True
        version = context.version
        if version is not None and self._ranges:
            if version in self._exact:
                return True
            parsed = _parse_version(version)
            if parsed is not None:
                for wanted in self._ranges:
                    if parsed in wanted:
                        return True
        return False

    def describe(self) -> str:
        """A short text for tables: ``gray``, ``all``, ``versions ^2; colors blue``."""
        if self.kind != "match":
            return self.kind
        parts = []
        if self.versions:
            parts.append("versions " + ", ".join(self.versions))
        if self.routes:
            parts.append("routes " + ", ".join(sorted(self.routes)))
        if self.colors:
            parts.append("colors " + ", ".join(sorted(self.colors)))
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"Selector({self.describe()!r})"


def compile_selector(spec: object) -> Selector:
    """Compile an ``applies_to`` value (``"gray"``, ``"all"`` or a mapping).

    :raises ValueError: describing what is wrong.
    """
    if spec in ("gray", "all"):
        return Selector(spec)
    if not isinstance(spec, t.Mapping):
        raise ValueError(f"applies_to must be 'gray', 'all' or a mapping, got {spec!r}")
    unknown = set(spec) - {"versions", "routes", "colors"}
    if unknown:
        raise ValueError(f"applies_to has unknown keys {sorted(unknown)} (use versions, routes, colors)")
    if not spec:
        raise ValueError("applies_to must name at least one of versions, routes, colors")
    lists: dict[str, list[str]] = {}
    for key in ("versions", "routes", "colors"):
        value = spec.get(key, [])
        if isinstance(value, str) or not isinstance(value, t.Sequence) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise ValueError(f"applies_to.{key} must be a list of non-empty strings, got {value!r}")
        lists[key] = list(value)
    for text in lists["versions"]:
        try:
            VersionRange(text)
        except ValueError as exc:
            raise ValueError(f"applies_to.versions: {text!r} is not a version or range: {exc}") from None
    return Selector("match", lists["versions"], lists["routes"], lists["colors"])


def is_gray(context: GrayContext | None, stable: t.Container[str]) -> bool:
    """Whether a request is gray traffic.

    Gray means a context that is not a fallback and that carries a gray
    marker: ``X-Version``, ``X-Canary-ID``, an ``X-Traffic-Color`` not in
    ``stable``, or a route (chosen by a split that ran before) not in
    ``stable``. A gray id alone is not a marker: every user has one.
    """
    if context is None or context.is_fallback:
        return False
    if context.version is not None or context.canary_id is not None:
        return True
    color = context.traffic_color
    if color is not None and color.lower() not in stable:
        return True
    route = context.route
    return route is not None and route not in stable
