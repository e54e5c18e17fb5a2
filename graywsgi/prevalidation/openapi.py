"""
OpenAPI documents
=================

What :class:`~graywsgi.prevalidation.layer.PreValidation` needs from a service's
OpenAPI 3.0 or 3.1 document, loaded and checked once at start-up:

- :func:`load_openapi` reads the document (YAML or JSON) and every file its
  ``$ref`` s reach, checks it with ``openapi-spec-validator`` and lists its
  operations, with their parameters and request-body schemas resolved;
- :class:`PathIndex` finds the operation of a request from its method and
  path without scanning every path (a trie of path segments).

References
----------

``$ref`` may point inside the document (``#/components/schemas/Order``) or
to a file beside it (``common.yaml#/components/schemas/Item``, resolved
against the directory of the file that holds the reference). Nothing is
ever fetched from the network: a reference (or a schema ``$id``) with a
URL scheme -- ``https://...``, ``file:...``, ``urn:...`` -- stops the load
with an error that names it.

Errors
------

Every problem raises :class:`OpenAPIError`, a
:class:`~graywsgi.errors.ConfigurationError`, whose message has one line per
problem naming the document (and line, where known), the operation and the
JSON pointer::

    orders.yaml:41: GET /orders: #/paths/~1orders/get/x-gray-rules/rules/0/field: query parameter 'limt' is not defined by the operation (defined: limit, status)
"""

from __future__ import annotations

import json
import os
import re
import typing as t
import urllib.parse
from dataclasses import dataclass, field

import yaml

from graywsgi.errors import ConfigurationError

__all__ = [
    "OpenAPIError",
    "Problem",
    "OpenAPIDocument",
    "Operation",
    "Parameter",
    "Node",
    "PathIndex",
    "load_openapi",
    "json_pointer",
    "HTTP_METHODS",
    "MAX_REPORTED",
]

Location = tuple[t.Union[str, int], ...]

#: The operations of a Path Item Object, in the order they are listed.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: At most this many problems are listed; a last line counts the rest.
MAX_REPORTED = 20

#: Files larger than this are refused (a document, or a file it refers to).
MAX_FILE_BYTES = 16 * 1024 * 1024


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


# --- the document ---------------------------------------------------------------


class OpenAPIDocument:
    """A loaded, checked OpenAPI 3.0/3.1 document. Immutable after loading.

    Use :func:`load_openapi` to make one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.display = os.fspath(path)
        self.path = os.path.realpath(self.display)
        self.files: dict[str, _File] = {}
        self.problems: list[Problem] = []
        main = self._read(self.path, None)
        if main is None:
            raise OpenAPIError(self.problems)
        self.data: dict[str, t.Any] = main.data
        if not isinstance(self.data, dict):
            raise OpenAPIError([self.problem(self.path, (), None, "the top level must be a mapping (an object)")])
        version = self.data.get("openapi")
        if not isinstance(version, str) or not re.match(r"3\.[01]\.\d+(-.+)?$", version):
            found = repr(version) if version is not None else "no 'openapi' member"
            if version is None and "swagger" in self.data:
                found = f"Swagger {self.data['swagger']!r}"
            raise OpenAPIError(
                [self.problem(self.path, ("openapi",) if version is not None else (), None,
                              f"graywsgi reads OpenAPI 3.0 and 3.1 documents; found {found}")]
            )
        self.version: str = version
        self._scan_references()
        if self.problems:
            raise OpenAPIError(self.problems)
        self._validate_with_openapi_spec_validator()
        if self.problems:
            raise OpenAPIError(self.problems)
        self.operations: tuple[Operation, ...] = tuple(self._operations())
        if self.problems:
            raise OpenAPIError(self.problems)

    # -- locations -------------------------------------------------------------

    def problem(self, file: str, location: Location, operation: str | None, reason: str) -> Problem:
        """A :class:`Problem` at ``location`` in ``file`` (an absolute path)."""
        loaded = self.files.get(file)
        display = loaded.display if loaded is not None else _display_name(file, self.path, self.display)
        if operation is None and file == self.path:
            operation = _operation_of(location)
        line = None
        if loaded is not None:
            for end in range(len(location), -1, -1):
                line = loaded.lines.get(location[:end])
                if line is not None:
                    break
        return Problem(display, line, operation, location, reason)

    def node_problem(self, node: Node, operation: str | None, reason: str) -> Problem:
        """A :class:`Problem` at ``node``."""
        return self.problem(node.file, node.location, operation, reason)

    @property
    def root(self) -> Node:
        """The whole document."""
        return Node(self.data, self.path, ())

    # -- reading -----------------------------------------------------------------

    def _read(self, path: str, referenced_from: tuple[str, Location] | None) -> _File | None:
        loaded = self.files.get(path)
        if loaded is not None:
            return loaded
        display = _display_name(path, self.path, self.display)
        where = referenced_from if referenced_from is not None else (path, ())

        def fail(reason: str, line: int | None = None, location: Location = ()) -> None:
            if referenced_from is None or line is not None or location:
                self.problems.append(Problem(display, line, None, location, reason))
            else:
                self.problems.append(self.problem(where[0], where[1], None, f"{display}: {reason}"))

        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            fail(f"cannot read the file: {exc.strerror or exc}")
            return None
        if len(raw) > MAX_FILE_BYTES:
            fail(f"larger than {MAX_FILE_BYTES} bytes")
            return None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            fail(f"not UTF-8: {exc}")
            return None
        try:
            data, lines = _parse_file(text, path.lower().endswith(".json"))
        except _FileProblem as exc:
            fail(exc.reason, exc.line, exc.location)
            return None
        except RecursionError:
            fail("nested too deeply")
            return None
        loaded = _File(path, display, data, lines)
        self.files[path] = loaded
        return loaded

    def _scan_references(self) -> None:
        """Read every file a ``$ref`` reaches; refuse network and unknown targets."""
        pending = [self.path]
        scanned: set[str] = set()
        while pending:
            path = pending.pop()
            if path in scanned:
                continue
            scanned.add(path)
            loaded = self.files[path]
            for location, ref in _references(loaded.data):
                target = self._check_reference(path, location, ref)
                if target is None:
                    continue
                target_path, pointer = target
                target_file = self._read(target_path, (path, location))
                if target_file is None:
                    continue
                if _walk_pointer(target_file.data, pointer) is _MISSING:
                    self.problems.append(
                        self.problem(path, location, None, f"$ref {ref!r} points at nothing ({json_pointer(pointer)} is not in {target_file.display})")
                    )
                pending.append(target_path)

    def _check_reference(self, path: str, location: Location, ref: str) -> tuple[str, Location] | None:
        split = urllib.parse.urlsplit(ref)
        if location and location[-1] == "$id":
            if split.scheme in ("http", "https"):
                self.problems.append(self.problem(path, location, None, f"$id {ref!r} is a network URL; graywsgi resolves only local files and fetches nothing from the network"))
            return None
        if split.scheme or split.netloc:
            kind = "a network URL" if split.scheme in ("http", "https", "ftp") or split.netloc else f"a {split.scheme}: URI"
            self.problems.append(
                self.problem(path, location, None, f"$ref {ref!r} is {kind}; graywsgi fetches nothing from the network "
                             "-- use '#/...' or a relative path to a file next to the document")
            )
            return None
        try:
            pointer = _parse_pointer(urllib.parse.unquote(split.fragment))
        except ValueError as exc:
            self.problems.append(self.problem(path, location, None, f"$ref {ref!r}: {exc}"))
            return None
        if not split.path:
            return path, pointer
        target = os.path.realpath(os.path.join(os.path.dirname(path), urllib.parse.unquote(split.path)))
        return target, pointer

    # -- openapi-spec-validator ----------------------------------------------------

    def _validate_with_openapi_spec_validator(self) -> None:
        from jsonschema_path import SchemaPath
        from openapi_spec_validator.shortcuts import get_validator_cls

        files = self.files

        def from_file(uri: str) -> t.Any:
            path = os.path.realpath(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
            loaded = files.get(path)
            if loaded is None:
                raise LookupError(f"{uri} was not read at start-up")
            return loaded.data

        def refuse(uri: str) -> t.Any:
            raise LookupError(f"refusing to fetch {uri}: graywsgi fetches nothing from the network")

        import urllib.request

        handlers = {"file": from_file, "http": refuse, "https": refuse, "<all_urls>": refuse}
        try:
            base = get_validator_cls(self.data)
        except Exception as exc:  # the version was checked already; be safe
            self.problems.append(self.problem(self.path, ("openapi",), None, f"openapi-spec-validator: {exc}"))
            return
        validator_cls = type(
            base.__name__,
            (base,),
            {"keyword_validators": {name: _locating(cls) for name, cls in base.keyword_validators.items()}},
        )
        schema_path = SchemaPath.from_dict(self.data, base_uri=_file_uri(self.path), handlers=handlers)
        try:
            validator = validator_cls(schema_path)
            errors = []
            for error in validator.iter_errors():
                errors.append(error)
                if len(errors) > MAX_REPORTED:
                    break
        except RecursionError:
            self.problems.append(self.problem(self.path, (), None, "openapi-spec-validator: references nest too deeply"))
            return
        except Exception as exc:
            self.problems.append(self.problem(self.path, (), None, f"openapi-spec-validator could not check the document: {exc}"))
            return
        for error in errors:
            parts: Location = tuple(getattr(error, "_graywsgi_parts", ()))
            location = (*parts, *error.absolute_path)
            message = error.message
            if len(message) > 400:
                message = message[:397] + "..."
            operation = _operation_of(location)
            self.problems.append(self.problem(self.path, location, operation, f"openapi-spec-validator: {message}"))

    # -- resolving -----------------------------------------------------------------

    def resolve(self, node: Node) -> Node:
        """Follow ``$ref`` s from ``node`` to the value they name."""
        seen: set[tuple[str, Location]] = set()
        while isinstance(node.value, dict) and isinstance(node.value.get("$ref"), str):
            ref = node.value["$ref"]
            key = (node.file, node.location)
            if key in seen or len(seen) > 64:
                raise OpenAPIError([self.node_problem(node, None, f"$ref {ref!r} is circular")])
            seen.add(key)
            split = urllib.parse.urlsplit(ref)
            pointer = _parse_pointer(urllib.parse.unquote(split.fragment))
            file = node.file
            if split.path:
                file = os.path.realpath(os.path.join(os.path.dirname(node.file), urllib.parse.unquote(split.path)))
            value = _walk_pointer(self.files[file].data, pointer)
            if value is _MISSING:  # pragma: no cover - checked when the references were scanned
                raise OpenAPIError([self.node_problem(node, None, f"$ref {ref!r} points at nothing")])
            node = Node(value, file, pointer)
        return node

    def member(self, node: Node, key: str | int) -> Node | None:
        """The member ``key`` of ``node`` (both resolved), if present."""
        child = self.resolve(node).child(key)
        return None if child is None else self.resolve(child)

    # -- operations ----------------------------------------------------------------

    def _operations(self) -> t.Iterator[Operation]:
        paths = self.root.child("paths")
        if paths is None or not isinstance(paths.value, dict):
            return
        for template, raw_item in paths.value.items():
            item = self.resolve(Node(raw_item, self.path, ("paths", template)))
            if not isinstance(item.value, dict):
                continue
            if "x-gray-rules" in item.value:
                self.problems.append(
                    self.node_problem(item, None, "x-gray-rules belongs on an operation (get, post, ...), not on the path item")
                )
            shared = self._parameters(item, None)
            for method in HTTP_METHODS:
                raw_operation = item.child(method)
                if raw_operation is None:
                    continue
                operation_node = self.resolve(raw_operation)
                label = f"{method.upper()} {template}"
                parameters = dict(shared)
                parameters.update(self._parameters(operation_node, label))
                yield Operation(
                    method=method,
                    path=template,
                    node=operation_node,
                    parameters=parameters,
                    body=self._body(operation_node),
                    gray_rules=operation_node.child("x-gray-rules"),
                )

    def _parameters(self, owner: Node, label: str | None) -> dict[tuple[str, str], Parameter]:
        out: dict[tuple[str, str], Parameter] = {}
        listed = self.member(owner, "parameters")
        if listed is None or not isinstance(listed.value, list):
            return out
        for index in range(len(listed.value)):
            node = self.member(listed, index)
            if node is None or not isinstance(node.value, dict):
                continue
            name, where = node.value.get("name"), node.value.get("in")
            if not isinstance(name, str) or not isinstance(where, str):
                continue
            schema = self.member(node, "schema")
            if schema is None:
                content = self.member(node, "content")
                if content is not None and isinstance(content.value, dict) and content.value:
                    media = self.member(content, next(iter(content.value)))
                    schema = None if media is None else self.member(media, "schema")
            style = node.value.get("style") or ("form" if where in ("query", "cookie") else "simple")
            explode = node.value.get("explode", style == "form")
            key_name = name.lower() if where == "header" else name
            out[(where, key_name)] = Parameter(
                name=name,
                location=where,
                schema=schema,
                style=str(style),
                explode=bool(explode),
                required=bool(node.value.get("required", False)),
                node=node,
            )
        return out

    def _body(self, operation: Node) -> dict[str, Node | None]:
        body = self.member(operation, "requestBody")
        if body is None:
            return {}
        content = self.member(body, "content")
        if content is None or not isinstance(content.value, dict):
            return {}
        out: dict[str, Node | None] = {}
        for media_type in content.value:
            media = self.member(content, media_type)
            out[str(media_type).lower()] = None if media is None else self.member(media, "schema")
        return out


def load_openapi(path: str | os.PathLike[str]) -> OpenAPIDocument:
    """Load and check the OpenAPI document at ``path``.

    :raises OpenAPIError: naming the document, line, operation and JSON
        pointer of each problem.
    """
    return OpenAPIDocument(path)


def _file_uri(path: str) -> str:
    return "file://" + urllib.parse.quote(path)


def _operation_of(location: Location) -> str | None:
    if len(location) >= 3 and location[0] == "paths" and location[2] in HTTP_METHODS:
        return f"{str(location[2]).upper()} {location[1]}"
    return None


def _locating(cls: type) -> type:
    """A keyword validator class that stamps errors with the path it checked.

    openapi-spec-validator's keyword validators report error paths relative
    to the object they check; the innermost one that yields an error records
    that object's location so the error can name a JSON pointer in the
    document.
    """

    def __call__(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Iterator[t.Any]:
        parts: tuple[t.Any, ...] | None = None
        for arg in args:
            arg_parts = getattr(arg, "parts", None)
            if isinstance(arg_parts, tuple):
                parts = arg_parts
                break
        for error in cls.__call__(self, *args, **kwargs):
            if parts is not None and not hasattr(error, "_graywsgi_parts"):
                try:
                    error._graywsgi_parts = parts
                except AttributeError:  # pragma: no cover - a slotted error type
                    pass
            yield error

    return type(cls.__name__, (cls,), {"__call__": __call__})


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


# --- the path index ----------------------------------------------------------------

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
