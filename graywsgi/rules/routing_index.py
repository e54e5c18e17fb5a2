"""
Rule index
==========

The lookup structures a :class:`~graywsgi.rules.routing.CompiledRules`
builds once from a rule set and reads per request: per host, a trie of path
segments (``_HostBucket``, ``_Node``), the value tables of the rules indexed
by an ``exact`` header, query or cookie condition (:func:`with_values`), and
the bounds of the "recent answers" memory that
:class:`~graywsgi.rules.decision.Decider` keeps. Checking a rule set and
filing its rules here is :mod:`graywsgi.rules.routing`.

Scale
-----

Matching cost does not grow with the number of host and prefix rules.
Rules are indexed by host -- a dict of exact hosts, a dict of wildcard
suffixes (``*.example.com`` is looked up once per label of the request's
host) and an "any host" bucket -- and, inside each, by a trie of path
segments holding prefix and template rules. A request walks its own host's
labels and path segments, gathers the few candidate rules and checks their
remaining conditions in declared order.

A rule with an ``exact`` header, query or cookie condition is indexed by
it as well: at its host and path it sits in a table keyed by the
condition's name and value (the first such condition of the rule:
headers, then query, then cookies), and a request looks its own value up
there, so 10,000 rules that each match ``X-Team: t<n>`` cost one dict
lookup, not 10,000 checks. Regex path rules cannot be indexed; they are
scanned, and a rule set may hold at most
:data:`~graywsgi.rules.routing.MAX_REGEX_PATH_RULES` of them. Rules that match on nothing indexable (a header ``prefix``,
``regex`` or ``present``, an API version range, an expression) are
checked one by one among their host and path's candidates: their cost
grows with their number (docs/routing.md gives the figures).

Memory
------

A rule set remembers the index's answer for the host/path pairs it saw
lately (:data:`RECENT_PATHS` pairs, forgotten all at once when full), but
only for a pair of at most :data:`RECENT_KEY_CHARS` characters whose
answer holds at most :data:`RECENT_CANDIDATES` rules: whatever the
traffic, the memory stays under a few MiB (docs/configuration.md).
"""

from __future__ import annotations

import re
import typing as t

from graywsgi.rules.decision import RequestFacts
from graywsgi.rules.model import Rule

__all__ = ["RECENT_CANDIDATES", "RECENT_KEY_CHARS", "RECENT_PATHS", "with_values"]


#: How many (host, path) pairs a rule set remembers the candidates of.
RECENT_PATHS = 4096
#: A pair longer than this (host and path together) is not remembered.
RECENT_KEY_CHARS = 512
#: Candidates beyond this many rules are not remembered (looking them up
#: again costs little beside checking them all).
RECENT_CANDIDATES = 64

#: The dimensions a rule can be indexed by, as RequestFacts reads them.
_KEYED_DIMENSIONS = ("headers", "query", "cookies")

#: An index answer: the candidates that hold for any value, and the value
#: tables to look the request's own values up in: (dimension, name, value -> rules).
_Keyed = t.Tuple[t.Tuple[str, str, t.Dict[str, t.List[int]]], ...]


def _segments(path: str) -> list[str]:
    segments = path.strip("/").split("/")
    if "" in segments:  # "//" inside, or the root path
        return [segment for segment in segments if segment]
    return segments


class _Node:
    """One path segment of a host's trie: the rules whose path ends here.

    ``*_keyed`` hold the rules indexed by a value as well:
    ``(dimension, name) -> value -> rule indexes``.
    """

    __slots__ = ("children", "param", "prefix_rules", "template_rules", "prefix_keyed", "template_keyed")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.prefix_rules: list[int] = []
        self.template_rules: list[int] = []
        self.prefix_keyed: dict[tuple[str, str], dict[str, list[int]]] = {}
        self.template_keyed: dict[tuple[str, str], dict[str, list[int]]] = {}

    def child(self, segment: str | None) -> _Node:
        if segment is None:
            if self.param is None:
                self.param = _Node()
            return self.param
        node = self.children.get(segment)
        if node is None:
            node = self.children[segment] = _Node()
        return node


class _HostBucket:
    """The rules of one host key: a path trie plus the regex path rules."""

    __slots__ = ("root", "regex_rules")

    def __init__(self) -> None:
        self.root = _Node()
        self.regex_rules: list[tuple[int, re.Pattern[str]]] = []

    def collect(
        self, segments: list[str], path: str, out: list[int], keyed: list[dict[tuple[str, str], dict[str, list[int]]]]
    ) -> None:
        """Add the rules whose path fits to ``out``, and the value tables
        of the nodes visited to ``keyed``."""
        self._walk(self.root, segments, 0, out, keyed)
        for index, pattern in self.regex_rules:
            if pattern.fullmatch(path) is not None:
                out.append(index)

    def _walk(self, node: _Node, segments: list[str], depth: int, out: list[int],
              keyed: list[dict[tuple[str, str], dict[str, list[int]]]]) -> None:
        out.extend(node.prefix_rules)
        if node.prefix_keyed:
            keyed.append(node.prefix_keyed)
        if depth == len(segments):
            out.extend(node.template_rules)
            if node.template_keyed:
                keyed.append(node.template_keyed)
            return
        segment = segments[depth]
        literal = node.children.get(segment)
        if literal is not None:
            self._walk(literal, segments, depth + 1, out, keyed)
        if node.param is not None:
            self._walk(node.param, segments, depth + 1, out, keyed)


def _value_key(rule: Rule) -> tuple[str, str, str] | None:
    """``(dimension, name, value)`` of the rule's first exact header, query
    or cookie condition: what the index files the rule under, if anything."""
    for dimension in _KEYED_DIMENSIONS:
        for condition in getattr(rule, dimension):
            if condition.exact is not None:
                return dimension, condition.name, condition.exact
    return None


def _add(node: _Node, form: str, index: int, value_key: tuple[str, str, str] | None) -> None:
    """File rule ``index`` at ``node`` (``form``: ``prefix`` or ``template``)."""
    if value_key is None:
        (node.prefix_rules if form == "prefix" else node.template_rules).append(index)
        return
    dimension, name, value = value_key
    tables = node.prefix_keyed if form == "prefix" else node.template_keyed
    tables.setdefault((dimension, name), {}).setdefault(value, []).append(index)


def with_values(plain: tuple[int, ...], keyed: _Keyed, facts: RequestFacts) -> list[int]:
    """``plain`` plus the rules the value tables ``keyed`` hold for the
    request's own header, query and cookie values, in declared order."""
    found = list(plain)
    for dimension, name, values in keyed:
        if dimension == "headers":
            value = facts.header(name)
        elif dimension == "query":
            value = facts.query(name)
        else:
            value = facts.cookie(name)
        if value is not None:
            hits = values.get(value)
            if hits is not None:
                found.extend(hits)
    if keyed and len(found) > 1:
        found.sort()
    return found
