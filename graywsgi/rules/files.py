"""
Rule files
==========

Rule sets are written in YAML (``.yaml``/``.yml``), JSON (``.json``) or TOML
(``.toml``) and described by a published JSON Schema,
``graywsgi/schema/rules.schema.json`` (:func:`rules_schema`). Loading a file
checks it in three steps, and the first step that fails stops the load:

1. **Syntax** -- the file must parse; duplicate keys are an error (YAML and
   JSON parsers would otherwise keep the last one silently).
2. **Schema** -- the data must satisfy the JSON Schema (checked with
   ``jsonschema``, draft 2020-12).
3. **Meaning** -- :class:`~graywsgi.rules.routing.CompiledRules` checks what a
   schema cannot: clusters that exist, weights that add up, regular
   expressions and expressions that compile, factors for dimensions the rule
   matches on.

Every error names the file, the line (YAML and JSON; TOML parse errors
too), the location as a JSON path and what is wrong, one per line::

    rules.yaml:14: $.rules[0].split[0].weight: 120 is greater than the maximum of 100
    rules.yaml:9: $.rules[0].split[1].cluster: unknown cluster 'canry' (clusters: canary, stable)
    rules.yaml:6: $.rules[0]: Additional properties are not allowed ('splt' was unexpected) (column 5)

The line is where the value in question starts. A key the schema does not
allow (a misspelt one, say) is reported at the key itself, with its column
after the reason -- in TOML files too, where :mod:`graywsgi.rules.toml_keys`
finds it.

All of these raise :class:`ConfigFileError`, a
:class:`~graywsgi.errors.ConfigurationError`.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
import typing as t
from importlib import resources

import jsonschema
import yaml

from graywsgi.rules.toml_keys import toml_key_positions
from graywsgi.errors import ConfigurationError
from graywsgi.rules.routing import CompiledRules, RuleError, json_path
from graywsgi.rules.model import RuleSet

__all__ = [
    "ConfigFileError",
    "load_rules",
    "parse_rules",
    "rules_schema",
    "FORMATS",
    # building blocks shared with other file formats (graywsgi.rollout.checklist)
    "document_text",
    "parse_document",
    "Positions",
    "published_schema",
    "schema_validator",
    "line_for",
    "schema_error_line",
    "schema_error_position",
    "schema_message",
    "path_sort_key",
]

#: File name suffix -> format.
FORMATS: t.Mapping[str, str] = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}

_Location = tuple[t.Union[str, int], ...]


class Positions(t.NamedTuple):
    """Where the parts of a parsed document are, by JSON path (1-based)."""

    #: The line each value starts on (YAML and JSON).
    lines: dict[_Location, int]
    #: ``(line, column)`` of the key that names each mapping member.
    keys: dict[_Location, tuple[int, int]]


class ConfigFileError(ConfigurationError):
    """A rule file that cannot be used.

    :param filename: the file.
    :param problems: ``(line or None, location, reason)`` for each problem.
    """

    def __init__(self, filename: str, problems: t.Sequence[tuple[int | None, _Location, str]]) -> None:
        self.filename = filename
        self.problems = list(problems)
        lines = []
        for line, location, reason in self.problems:
            where = f"{filename}:{line}" if line is not None else filename
            lines.append(f"{where}: {json_path(location)}: {reason}")
        super().__init__("\n".join(lines))


@functools.cache
def published_schema(name: str) -> dict[str, t.Any]:
    """A JSON Schema shipped in ``graywsgi/schema/`` (e.g. ``rules.schema.json``)."""
    text = resources.files("graywsgi").joinpath(f"schema/{name}").read_text("utf-8")
    schema: dict[str, t.Any] = json.loads(text)
    return schema


@functools.cache
def schema_validator(name: str) -> jsonschema.protocols.Validator:
    """A checked validator for :func:`published_schema` ``name``, built once."""
    schema = published_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def rules_schema() -> dict[str, t.Any]:
    """The published JSON Schema of rule files."""
    return published_schema("rules.schema.json")


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator("rules.schema.json")


def load_rules(path: str | os.PathLike[str]) -> CompiledRules:
    """Load, check and compile the rule file at ``path``.

    :raises ConfigFileError: naming the file, line, JSON path and reason.
    """
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigFileError(filename, [(None, (), f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_rules(raw, filename=filename)


def parse_rules(raw: bytes | str, *, filename: str, format: str | None = None) -> CompiledRules:
    """Check and compile rule-file content.

    :param raw: the content (bytes are decoded as UTF-8).
    :param filename: named in errors; its suffix picks the format unless
        ``format`` is given.
    :param format: ``yaml``, ``json`` or ``toml``.
    :raises ConfigFileError: naming the file, line, JSON path and reason.
    """
    text, format = document_text(raw, filename, format)
    try:
        return _check(text, filename, format)
    except RecursionError:
        raise ConfigFileError(filename, [(None, (), "nested too deeply")]) from None


def document_text(raw: bytes | str, filename: str, format: str | None) -> tuple[str, str]:
    """A configuration document as text, and its format (from ``filename``'s
    suffix unless ``format`` is given).

    :raises ConfigFileError: for an unknown file type, or bytes that are not UTF-8.
    """
    if format is None:
        format = FORMATS.get(os.path.splitext(filename)[1].lower())
        if format is None:
            raise ConfigFileError(
                filename, [(None, (), f"unknown file type; use one of {', '.join(sorted(FORMATS))}")]
            )
    if not isinstance(raw, bytes):
        return raw, format
    try:
        return raw.decode("utf-8"), format
    except UnicodeDecodeError as exc:
        raise ConfigFileError(filename, [(None, (), f"not UTF-8: {exc}")]) from None


def _check(text: str, filename: str, format: str) -> CompiledRules:
    data, positions = parse_document(text, filename, format)
    if not isinstance(data, dict):
        raise ConfigFileError(filename, [(1, (), "the top level must be a mapping (an object)")])
    problems = [_schema_problem(positions, error) for error in _validator().iter_errors(data)]
    if problems:
        problems.sort(key=lambda p: (p[0] if p[0] is not None else 0, path_sort_key(p[1])))
        if len(problems) > MAX_REPORTED:
            left_out = len(problems) - MAX_REPORTED
            problems = problems[:MAX_REPORTED] + [(None, (), f"... and {left_out} more problems")]
        raise ConfigFileError(filename, problems)
    try:
        return CompiledRules(RuleSet.from_dict(data))
    except RuleError as exc:
        raise ConfigFileError(filename, [(line_for(positions, exc.location), exc.location, exc.reason)]) from None


def _schema_problem(positions: Positions, error: jsonschema.ValidationError) -> tuple[int | None, _Location, str]:
    line, column = schema_error_position(positions, error)
    reason = schema_message(error)
    if column is not None:
        reason = f"{reason} (column {column})"
    return line, tuple(error.absolute_path), reason


#: At most this many schema problems are listed; a last line counts the rest.
MAX_REPORTED = 20


def path_sort_key(location: _Location) -> tuple[tuple[int, int, str], ...]:
    """Sort JSON paths with list indexes compared as numbers."""
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in location)


def schema_error_position(positions: Positions, error: jsonschema.ValidationError) -> tuple[int | None, int | None]:
    """Where a schema error is, as ``(line, column)``.

    For keys the schema does not allow: the line and column of the first of
    them in the file (``error`` names their mapping). Otherwise: the line of
    the value (or of its nearest ancestor that has one) and no column.
    """
    location = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        found = [positions.keys.get((*location, key)) for key in error.instance if key not in allowed]
        known = [position for position in found if position is not None]
        if known:
            return min(known)
    return line_for(positions, location), None


def schema_error_line(positions: Positions, error: jsonschema.ValidationError) -> int | None:
    """The line of a schema error; for an unexpected key, that key's line."""
    return schema_error_position(positions, error)[0]


def schema_message(error: jsonschema.ValidationError) -> str:
    """A schema error's message, capped at 300 characters."""
    message = error.message
    if len(message) > 300:
        message = message[:297] + "..."
    return message


def line_for(positions: Positions, location: _Location) -> int | None:
    """The line of ``location``, or of its nearest ancestor that has one."""
    for end in range(len(location), -1, -1):
        line = positions.lines.get(location[:end])
        if line is not None:
            return line
    return None


def parse_document(text: str, filename: str, format: str) -> tuple[t.Any, Positions]:
    """Parse YAML, JSON or TOML text; return the data and where its parts are.

    TOML files get the positions of keys only (:mod:`tomllib` gives none).

    :raises ConfigFileError: for a syntax error or a duplicate key.
    """
    if format == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(filename, [(None, (), f"invalid TOML: {exc}")]) from None
        return data, Positions({}, toml_key_positions(text))
    if format == "json":
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise ConfigFileError(filename, [(exc.lineno, (), f"invalid JSON: {exc.msg} (column {exc.colno})")]) from None
        except _DuplicateKey as exc:
            try:  # YAML's composer finds the duplicate's line
                _yaml_positions(text.replace("\t", " "), filename, strict=True)
            except ConfigFileError as located:
                if "duplicate key" in str(located):
                    raise located from None
            raise ConfigFileError(filename, [(None, (), f"duplicate key {exc.key!r}")]) from None
        # Tabs are whitespace between JSON tokens and invalid inside strings,
        # so spaces in their place keep every line where it is.
        return data, _yaml_positions(text.replace("\t", " "), filename, strict=False)
    if format == "yaml":
        positions = _yaml_positions(text, filename, strict=True)
        try:
            return yaml.safe_load(text), positions
        except yaml.YAMLError as exc:  # pragma: no cover - compose already parsed it
            raise ConfigFileError(filename, [(None, (), f"invalid YAML: {exc}")]) from None
    raise ConfigFileError(filename, [(None, (), f"unknown format {format!r}")])


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _yaml_positions(text: str, filename: str, *, strict: bool) -> Positions:
    """Where each value and mapping key of the document is.

    With ``strict`` (YAML files), syntax errors and duplicate or non-string
    keys raise :class:`ConfigFileError`; otherwise (JSON read as YAML for its
    line numbers) problems just mean fewer lines are known.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        if not strict:
            return Positions({}, {})
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(filename, [(line, (), f"invalid YAML: {problem}")]) from None
    positions = Positions({}, {})
    if root is None:
        return positions

    def walk(node: yaml.Node, location: _Location) -> None:
        positions.lines[location] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if strict and not (isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str")):
                    raise ConfigFileError(
                        filename,
                        [(key_node.start_mark.line + 1, location, f"keys must be strings, got {key!r}")],
                    )
                if strict and key in seen:
                    raise ConfigFileError(
                        filename, [(key_node.start_mark.line + 1, location, f"duplicate key {key!r}")]
                    )
                seen.add(key)
                mark = key_node.start_mark
                positions.keys[(*location, key)] = (mark.line + 1, mark.column + 1)
                walk(value_node, (*location, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*location, index))

    walk(root, ())
    return positions
