"""
OpenAPI documents
=================

What :class:`~graywsgi.prevalidation.layer.PreValidation` needs from a service's
OpenAPI 3.0 or 3.1 document, loaded and checked once at start-up:

- :func:`load_openapi` reads the document (YAML or JSON) and every file its
  ``$ref`` s reach, checks it with ``openapi-spec-validator`` and lists its
  operations, with their parameters and request-body schemas resolved;
- :class:`~graywsgi.prevalidation.openapi_path_index.PathIndex` finds the
  operation of a request from its method and path without scanning every
  path (a trie of path segments).

This module holds :class:`OpenAPIDocument` and :func:`load_openapi`. Its
siblings hold the rest, and every name of its ``__all__`` is importable from
here: :mod:`graywsgi.prevalidation.openapi_model` (nodes, operations,
parameters, problems, :class:`~graywsgi.prevalidation.openapi_model.OpenAPIError`),
:mod:`graywsgi.prevalidation.openapi_files` (parsing files, finding ``$ref`` s,
JSON pointers) and :mod:`graywsgi.prevalidation.openapi_path_index`
(:class:`~graywsgi.prevalidation.openapi_path_index.PathIndex`).

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

Every problem raises
:class:`~graywsgi.prevalidation.openapi_model.OpenAPIError`, a
:class:`~graywsgi.errors.ConfigurationError`, whose message has one line per
problem naming the document (and line, where known), the operation and the
JSON pointer (see :mod:`graywsgi.prevalidation.openapi_model`).
"""

from __future__ import annotations

import os
import re
import typing as t
import urllib.parse

from graywsgi.prevalidation.openapi_files import (
    _MISSING,
    _display_name,
    _File,
    _FileProblem,
    _parse_file,
    _parse_pointer,
    _references,
    _walk_pointer,
)
from graywsgi.prevalidation.openapi_model import (
    HTTP_METHODS,
    MAX_REPORTED,
    Location,
    Node,
    OpenAPIError,
    Operation,
    Parameter,
    Problem,
    json_pointer,
)
from graywsgi.prevalidation.openapi_path_index import PathIndex

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

#: Files larger than this are refused (a document, or a file it refers to).
MAX_FILE_BYTES = 16 * 1024 * 1024


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
        """A :class:`~graywsgi.prevalidation.openapi_model.Problem` at ``location`` in
        ``file`` (an absolute path)."""
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
        """A :class:`~graywsgi.prevalidation.openapi_model.Problem` at ``node``."""
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

    :raises ~graywsgi.prevalidation.openapi_model.OpenAPIError: naming the
        document, line, operation and JSON pointer of each problem.
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

