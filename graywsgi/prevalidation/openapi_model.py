"""
OpenAPI document model
======================

The values :mod:`graywsgi.prevalidation.openapi` makes of a loaded document
and its problems: :class:`Node` (a value and where it is), the
:class:`Operation` and :class:`Parameter` records of each operation,
:class:`Problem` and :class:`OpenAPIError`, and :func:`json_pointer`. The
loading itself is :class:`~graywsgi.prevalidation.openapi.OpenAPIDocument`
(reading files: :mod:`graywsgi.prevalidation.openapi_files`); the per-request
operation lookup is :mod:`graywsgi.prevalidation.openapi_path_index`. All
public names here are importable from :mod:`graywsgi.prevalidation.openapi`.

Errors
------

Every problem raises :class:`OpenAPIError`, a
:class:`~graywsgi.errors.ConfigurationError`, whose message has one line per
problem naming the document (and line, where known), the operation and the
JSON pointer::

    orders.yaml:41: GET /orders: #/paths/~1orders/get/x-gray-rules/rules/0/field: query parameter 'limt' is not defined by the operation (defined: limit, status)
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from graywsgi.errors import ConfigurationError

__all__ = [
    "OpenAPIError",
    "Problem",
    "Operation",
    "Parameter",
    "Node",
    "json_pointer",
    "HTTP_METHODS",
    "MAX_REPORTED",
]

Location = tuple[t.Union[str, int], ...]

#: The operations of a Path Item Object, in the order they are listed.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: At most this many problems are listed; a last line counts the rest.
MAX_REPORTED = 20


def json_pointer(location: t.Sequence[str | int]) -> str:
    """Render a location as a JSON pointer fragment: ``#/paths/~1orders/get``."""
    return "#" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


class Problem(t.NamedTuple):
    """One thing wrong with a document, and where."""

    document: str  #: the file, as the user named it (or relative to it)
    line: int | None  #: 1-based line in that file, when known
    operation: str | None  #: ``"POST /orders/{order_id}"``, when inside one
    location: Location  #: where in that file
    reason: str  #: what is wrong

    def __str__(self) -> str:
        where = f"{self.document}:{self.line}" if self.line is not None else self.document
        operation = self.operation or "(document)"
        return f"{where}: {operation}: {json_pointer(self.location)}: {self.reason}"


class OpenAPIError(ConfigurationError):
    """An OpenAPI document, or its ``x-gray-rules``, that cannot be used.

    :param problems: every problem found (at most :data:`MAX_REPORTED` are
        listed in the message, then a count of the rest).
    """

    def __init__(self, problems: t.Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [str(problem) for problem in self.problems[:MAX_REPORTED]]
        if len(self.problems) > MAX_REPORTED:
            lines.append(f"... and {len(self.problems) - MAX_REPORTED} more problems")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Node:
    """A value in one of the document's files, and where it is."""

    value: t.Any
    file: str  #: absolute path of the file holding it
    location: Location

    def child(self, key: str | int) -> Node | None:
        """The member ``key`` of this (unresolved) node, if present."""
        value = self.value
        if isinstance(value, dict) and isinstance(key, str) and key in value:
            return Node(value[key], self.file, (*self.location, key))
        if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
            return Node(value[key], self.file, (*self.location, key))
        return None


class Parameter(t.NamedTuple):
    """A parameter of an operation, ``$ref`` resolved."""

    name: str
    location: str  #: ``query``, ``header``, ``path`` or ``cookie``
    schema: Node | None  #: the parameter's schema, resolved
    style: str
    explode: bool
    required: bool
    node: Node


@dataclass(frozen=True)
class Operation:
    """One operation of the document: a method on a path template."""

    method: str  #: lower case, as in the document
    path: str  #: the path template, e.g. ``/orders/{order_id}``
    node: Node  #: the Operation Object, resolved
    parameters: t.Mapping[tuple[str, str], Parameter]  #: by (``in``, name); header names lower case
    body: t.Mapping[str, Node | None]  #: media type -> its schema, resolved
    gray_rules: Node | None  #: the ``x-gray-rules`` member

    @property
    def label(self) -> str:
        """``"POST /orders/{order_id}"``."""
        return f"{self.method.upper()} {self.path}"
