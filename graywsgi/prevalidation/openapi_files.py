"""
OpenAPI files
=============

The file-level pieces of loading an OpenAPI document, used by
:class:`~graywsgi.prevalidation.openapi.OpenAPIDocument`: parsing a YAML or
JSON file into JSON-compatible data with the line of every location
(duplicate keys refused, dates kept as text), finding every ``$ref`` and
``$id`` in a file, and parsing and walking JSON pointers. The values they
describe are in :mod:`graywsgi.prevalidation.openapi_model`.
"""

from __future__ import annotations

import json
import os
import typing as t
from dataclasses import dataclass, field

import yaml

from graywsgi.prevalidation.openapi_model import Location

__all__: list[str] = []


@dataclass
class _File:
    path: str
    display: str
    data: t.Any
    lines: dict[Location, int] = field(default_factory=dict)


# --- reading files -------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text (JSON has no date type)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FileProblem(Exception):
    def __init__(self, line: int | None, location: Location, reason: str) -> None:
        self.line = line
        self.location = location
        self.reason = reason


def _parse_file(text: str, is_json: bool) -> tuple[t.Any, dict[Location, int]]:
    """Parse a YAML or JSON file into JSON-compatible data, with line numbers."""
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _FileProblem(exc.lineno, (), f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        try:
            return data, _lines(text.replace("\t", " "))
        except (_FileProblem, yaml.YAMLError):
            return data, {}
    lines = _lines(text)
    try:
        loaded = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:  # pragma: no cover - composing already parsed it
        raise _FileProblem(None, (), f"invalid YAML: {exc}") from None
    try:
        # Mapping keys become strings as in JSON (``200:`` is the key "200").
        data = json.loads(json.dumps(loaded, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _FileProblem(None, (), f"not representable as JSON: {exc}") from None
    return data, lines


def _lines(text: str) -> dict[Location, int]:
    """Map each location in a YAML/JSON text to its 1-based line; reject duplicate keys."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise _FileProblem(line, (), f"invalid YAML: {problem}") from None
    lines: dict[Location, int] = {}
    if root is None:
        return lines
    stack: list[tuple[yaml.Node, Location]] = [(root, ())]
    seen_nodes = 0
    while stack:
        node, location = stack.pop()
        seen_nodes += 1
        if seen_nodes > 2_000_000 or len(location) > 200:
            raise _FileProblem(node.start_mark.line + 1, location, "nested too deeply or too large")
        lines[location] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in keys:
                    raise _FileProblem(key_node.start_mark.line + 1, location, f"duplicate key {key!r}")
                keys.add(key)
                stack.append((value_node, (*location, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*location, index)))
    return lines


def _display_name(path: str, main_path: str, main_display: str) -> str:
    if path == main_path:
        return main_display
    relative = os.path.relpath(path, os.path.dirname(main_path))
    return os.path.normpath(os.path.join(os.path.dirname(main_display), relative))


# --- references and pointers ----------------------------------------------------

_MISSING: t.Any = object()

#: Members whose values are data, not schema: ``$ref`` inside them is just a
#: key (unless the member is a property *named* so, under ``properties``).
_DATA_MEMBERS = frozenset({"example", "default", "enum", "const", "x-gray-rules"})
_NAMING_MEMBERS = frozenset({"properties", "patternProperties"})


def _references(data: t.Any) -> t.Iterator[tuple[Location, str]]:
    """Every ``$ref`` (and ``$id``) string in ``data``, with its location."""
    stack: list[tuple[t.Any, Location]] = [(data, ())]
    while stack:
        value, location = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if key in ("$ref", "$id") and isinstance(child, str):
                    yield (*location, key), child
                elif key in _DATA_MEMBERS and not (location and location[-1] in _NAMING_MEMBERS):
                    continue
                elif isinstance(child, (dict, list)):
                    stack.append((child, (*location, key)))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                if isinstance(child, (dict, list)):
                    stack.append((child, (*location, index)))


def _parse_pointer(fragment: str) -> Location:
    if not fragment:
        return ()
    if not fragment.startswith("/"):
        raise ValueError(f"the fragment {fragment!r} is not a JSON pointer (it must start with '/')")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in fragment[1:].split("/"))


def _walk_pointer(data: t.Any, pointer: Location) -> t.Any:
    for part in pointer:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and str(part).isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data
