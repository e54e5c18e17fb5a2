"""
The syntax tree of the expression language.

The node types that the parser (:mod:`graywsgi.rules.expression.parser`)
builds and the closure builder (:mod:`graywsgi.rules.expression.evaluate`)
consumes; the names a tree may hold -- the attributes and lookups a
:class:`_Read` reads, the methods a :class:`_Method` calls (the parser's
documentation lists them); and :func:`_position`, where a node starts in
the source.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Literal:
    value: str | float | bool | None
    position: int


@dataclass(frozen=True, slots=True)
class _Read:
    kind: str  # "attribute", "header", "query" or "cookie": the Facts method
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class _Method:
    receiver: _Node
    name: str
    argument: str | None
    position: int  # of the method name
    argument_position: int


@dataclass(frozen=True, slots=True)
class _Compare:
    operator: str
    left: _Node
    right: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _Member:
    operand: _Node
    items: tuple[_Literal, ...]
    position: int


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _Logic:
    operator: str  # "&&" or "||"
    operands: tuple[_Node, ...]
    position: int


_Node: t.TypeAlias = _Literal | _Read | _Method | _Compare | _Member | _Not | _Logic

_ATTRIBUTES = frozenset(
    {
        "host",
        "path",
        "method",
        "scheme",
        "gray_id",
        "env",
        "version",
        "api_version",
        "canary_id",
        "traffic_color",
        "tenant",
        "role",
        "remote_addr",
    }
)
_LOOKUPS = frozenset({"header", "query", "cookie"})
_METHODS_WITH_ARGUMENT = frozenset({"startsWith", "endsWith", "contains", "matches"})
_METHODS_WITHOUT_ARGUMENT = frozenset({"lower", "upper", "size"})
_METHODS = _METHODS_WITH_ARGUMENT | _METHODS_WITHOUT_ARGUMENT


def _position(node: _Node) -> int:
    """Where ``node`` starts in the source (its leftmost token)."""
    while True:
        if isinstance(node, _Method):
            node = node.receiver
        elif isinstance(node, _Compare):
            node = node.left
        elif isinstance(node, _Member):
            node = node.operand
        elif isinstance(node, _Logic):
            node = node.operands[0]
        else:
            return node.position
