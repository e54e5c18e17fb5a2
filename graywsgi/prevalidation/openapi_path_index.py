"""
OpenAPI path index
==================

:class:`PathIndex`, which finds the operation of a request from its method
and path without scanning every path template (a trie of path segments).
:class:`~graywsgi.prevalidation.layer.PreValidation` fills one with the
operations of its :class:`~graywsgi.prevalidation.openapi.OpenAPIDocument`.
Importable from :mod:`graywsgi.prevalidation.openapi`.
"""

from __future__ import annotations

import re
import typing as t

__all__ = ["PathIndex"]


V = t.TypeVar("V")

_TEMPLATE_PARAM = re.compile(r"\{([^{}/]+)\}")


class _Segment(t.Generic[V]):
    __slots__ = ("literal", "patterns", "param", "values")

    def __init__(self) -> None:
        self.literal: dict[str, _Segment[V]] = {}
        #: segments mixing text and parameters (``export.{format}``)
        self.patterns: list[tuple[re.Pattern[str], _Segment[V]]] = []
        self.param: _Segment[V] | None = None
        #: method -> (value, parameter names in path order)
        self.values: dict[str, tuple[V, tuple[str, ...]]] = {}


class PathIndex(t.Generic[V]):
    """Operations by method and path template, found without a scan.

    A trie of path segments: literal segments are dict lookups, a whole
    ``{param}`` segment is one wildcard edge, and a segment mixing text and
    parameters (``export.{format}``) is a short list of regular expressions
    at that node. Concrete segments win over templated ones, as OpenAPI
    asks; a request visits only the nodes along its own path.

    >>> index = PathIndex()
    >>> index.add("get", "/orders/{order_id}", "getOrder")
    >>> index.add("get", "/orders/export.{format}", "export")
    >>> index.match("get", "/orders/42")
    ('getOrder', {'order_id': '42'})
    >>> index.match("get", "/orders/export.csv")
    ('export', {'format': 'csv'})
    >>> index.match("post", "/orders/42") is None
    True
    """

    def __init__(self) -> None:
        self._root: _Segment[V] = _Segment()
        self.size = 0

    def add(self, method: str, template: str, value: V) -> None:
        """Index ``value`` under ``method`` and ``template``."""
        node = self._root
        names: list[str] = []
        for segment in template.split("/")[1:]:
            found = _TEMPLATE_PARAM.findall(segment)
            names.extend(found)
            if not found:
                node = node.literal.setdefault(segment, _Segment())
            elif _TEMPLATE_PARAM.fullmatch(segment):
                if node.param is None:
                    node.param = _Segment()
                node = node.param
            else:
                regex = ""
                position = 0
                for match in _TEMPLATE_PARAM.finditer(segment):
                    regex += re.escape(segment[position:match.start()]) + "(.+?)"
                    position = match.end()
                regex += re.escape(segment[position:])
                for existing, child in node.patterns:
                    if existing.pattern == regex:
                        node = child
                        break
                else:
                    child = _Segment()
                    node.patterns.append((re.compile(regex), child))
                    node = child
        node.values[method.lower()] = (value, tuple(names))
        self.size += 1

    def match(self, method: str, path: str) -> tuple[V, dict[str, str]] | None:
        """The value for ``method`` on ``path`` and the path parameters, or ``None``."""
        segments = path.split("/")
        if segments[0] != "" or len(segments) < 2:
            return None
        captured: list[str] = []
        found = self._walk(self._root, segments, 1, method.lower(), captured)
        if found is None:
            return None
        value, names = found
        return value, dict(zip(names, captured))

    def _walk(
        self, node: _Segment[V], segments: list[str], depth: int, method: str, captured: list[str]
    ) -> tuple[V, tuple[str, ...]] | None:
        if depth == len(segments):
            return node.values.get(method)
        segment = segments[depth]
        child = node.literal.get(segment)
        if child is not None:
            found = self._walk(child, segments, depth + 1, method, captured)
            if found is not None:
                return found
        mark = len(captured)
        for pattern, pattern_child in node.patterns:
            match = pattern.fullmatch(segment)
            if match is not None:
                captured.extend(match.groups())
                found = self._walk(pattern_child, segments, depth + 1, method, captured)
                if found is not None:
                    return found
                del captured[mark:]
        param = node.param
        if param is not None and segment:
            captured.append(segment)
            found = self._walk(param, segments, depth + 1, method, captured)
            if found is not None:
                return found
            del captured[mark:]
        return None
