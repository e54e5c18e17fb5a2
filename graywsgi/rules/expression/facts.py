"""
What an expression reads about a request.

:class:`Facts` is the protocol through which
:meth:`~graywsgi.rules.expression.compiled.Expression.evaluate`
reads attributes, headers, query parameters and cookies;
:class:`MappingFacts` is a plain one built from dictionaries (for tests, the
docs and the CLI). How the values read are treated is described in
:mod:`graywsgi.rules.expression.values`.
"""

from __future__ import annotations

import typing as t
from types import MappingProxyType

__all__ = ["Facts", "MappingFacts"]


class Facts(t.Protocol):
    """What an expression can read about a request.

    Every method returns the value as a string, or ``None`` when the request
    has no such value. Anything else returned is treated as *no value* (see
    :mod:`graywsgi.rules.expression.values`); exceptions raised by these
    methods propagate out of
    :meth:`~graywsgi.rules.expression.compiled.Expression.evaluate` unchanged.
    """

    def attribute(self, name: str) -> str | None:
        """An attribute: one of :attr:`~graywsgi.rules.expression.compiled.Expression.ATTRIBUTES`."""
        ...

    def header(self, name: str) -> str | None:
        """A request header; ``name`` is matched case-insensitively."""
        ...

    def query(self, name: str) -> str | None:
        """A query-string parameter (the first, if repeated)."""
        ...

    def cookie(self, name: str) -> str | None:
        """A cookie."""
        ...


_EMPTY: t.Mapping[str, str] = MappingProxyType({})


class MappingFacts:
    """:class:`Facts` read from plain mappings.

    >>> facts = MappingFacts({"path": "/"}, headers={"X-Tier": "gold"})
    >>> facts.header("x-tier"), facts.attribute("host"), facts.cookie("beta")
    ('gold', None, None)

    :param attributes: attribute name to value.
    :param headers: header name (any case) to value.
    :param query: query parameter name to value.
    :param cookies: cookie name to value.
    """

    __slots__ = ("_attributes", "_headers", "_query", "_cookies")

    def __init__(
        self,
        attributes: t.Mapping[str, str] = _EMPTY,
        headers: t.Mapping[str, str] = _EMPTY,
        query: t.Mapping[str, str] = _EMPTY,
        cookies: t.Mapping[str, str] = _EMPTY,
    ) -> None:
        self._attributes = dict(attributes)
        self._headers = {name.lower(): value for name, value in headers.items()}
        self._query = dict(query)
        self._cookies = dict(cookies)

    def attribute(self, name: str) -> str | None:
        """The attribute ``name``, or ``None``."""
        return self._attributes.get(name)

    def header(self, name: str) -> str | None:
        """The header ``name`` (case-insensitive), or ``None``."""
        return self._headers.get(name.lower())

    def query(self, name: str) -> str | None:
        """The query parameter ``name``, or ``None``."""
        return self._query.get(name)

    def cookie(self, name: str) -> str | None:
        """The cookie ``name``, or ``None``."""
        return self._cookies.get(name)

    def __repr__(self) -> str:
        return (
            f"MappingFacts({self._attributes!r}, headers={self._headers!r}, "
            f"query={self._query!r}, cookies={self._cookies!r})"
        )
