"""
The checklist file
==================

A rollback checklist file (:mod:`graywsgi.rollout.checklist`) and what it
loads into: a :class:`Checklist` of :class:`Check` objects, each with its
kind compiled (the kinds: :mod:`graywsgi.rollout.checklist.http_kinds`,
:mod:`graywsgi.rollout.checklist.state_kinds`,
:mod:`graywsgi.rollout.checklist.command_kinds`).
:func:`~graywsgi.rollout.checklist.running.run_checklist` runs it.

YAML or JSON, described by the published JSON Schema
``graywsgi/schema/checklist.schema.json`` (:func:`checklist_schema`), and
checked like rule files (:mod:`graywsgi.rules.files`): every error names the
file, the line, the JSON path and what is wrong::

    checklist.yaml:12: $.checks[2].timeout: -1 is less than or equal to the minimum of 0
    checklist.yaml:20: $.checks[4].depends_on[0]: unknown check 'cache-clear' (checks: cache-cleared, ...)

Top level: ``checks`` (a list), ``requires_signoff`` (default false),
``max_parallel`` (at most this many checks at a time, default 4),
``name`` and ``description``. Each check has a ``name`` (unique), a
``kind``, a ``timeout`` in seconds and optionally ``depends_on`` (names of
checks that must *pass* first) and ``description``; the other keys belong
to its kind. Relative paths (a file state location, a shell ``cwd``) are
relative to the checklist file's directory.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing as t

import jsonschema

from graywsgi.rollout.checklist.command_kinds import _PythonCallable, _ShellCommand
from graywsgi.rollout.checklist.http_kinds import _HttpProbe, _MetricsWithinBaseline
from graywsgi.rollout.checklist.kind_base import _Invalid, _Location, _Problem, _Runner
from graywsgi.rollout.checklist.state_kinds import _GraySwitchClosed, _StoreReachable
from graywsgi.rollout.checklist.text import _show_repr
from graywsgi.rules.files import (
    MAX_REPORTED,
    ConfigFileError,
    document_text,
    line_for,
    parse_document,
    path_sort_key,
    published_schema,
    schema_error_line,
    schema_message,
    schema_validator,
)

__all__ = ["KINDS", "Check", "Checklist", "checklist_schema", "load_checklist", "parse_checklist"]

#: The kinds a check can have.
KINDS = ("http", "metrics_within_baseline", "gray_switch_closed", "store_reachable", "shell", "python")

#: Checks running at the same time, unless the file says otherwise.
DEFAULT_MAX_PARALLEL = 4

_COMMON_KEYS = frozenset({"name", "kind", "timeout", "description", "depends_on"})


def checklist_schema() -> dict[str, t.Any]:
    """The published JSON Schema of checklist files."""
    return published_schema("checklist.schema.json")


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator("checklist.schema.json")


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of a checklist, as loaded from the file.

    :param name: unique within the checklist.
    :param kind: one of :data:`~graywsgi.rollout.checklist.file.KINDS`.
    :param timeout: seconds from its start to its verdict.
    :param depends_on: checks that must pass before this one starts.
    :param options: the kind's options, as written in the file.
    :param description: free text.
    """

    name: str
    kind: str
    timeout: float
    depends_on: tuple[str, ...] = ()
    options: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    _runner: _Runner | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Checklist:
    """A loaded checklist.

    :param checks: in the order of the file.
    :param requires_signoff: whether two distinct approvers are needed.
    :param max_parallel: at most this many checks at a time.
    :param name: shown in the report.
    :param filename: the file it came from.
    """

    checks: tuple[Check, ...]
    requires_signoff: bool = False
    max_parallel: int = DEFAULT_MAX_PARALLEL
    name: str = ""
    filename: str = ""

    def check(self, name: str) -> Check:
        """The check called ``name``.

        :raises KeyError: if there is none.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def load_checklist(path: str | os.PathLike[str]) -> Checklist:
    """Load and check the checklist file at ``path``.

    :raises ConfigFileError: naming the file, line, JSON path and reason.
    """
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigFileError(filename, [(None, (), f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_checklist(raw, filename=filename)


def parse_checklist(
    raw: bytes | str, *, filename: str, format: str | None = None, directory: str | None = None
) -> Checklist:
    """Check checklist content.

    :param raw: the content (bytes are decoded as UTF-8).
    :param filename: named in errors; its suffix picks the format unless
        ``format`` is given.
    :param format: ``yaml`` or ``json`` (``toml`` works too, without line numbers).
    :param directory: what relative paths are relative to (default: the
        directory of ``filename``).
    :raises ConfigFileError: naming the file, line, JSON path and reason.
    """
    text, format = document_text(raw, filename, format)
    if directory is None:
        directory = os.path.dirname(os.path.abspath(filename))
    try:
        return _check_file(text, filename, format, directory)
    except RecursionError:
        raise ConfigFileError(filename, [(None, (), "nested too deeply")]) from None


def _check_file(text: str, filename: str, format: str, directory: str) -> Checklist:
    data, lines = parse_document(text, filename, format)
    if not isinstance(data, dict):
        raise ConfigFileError(filename, [(1, (), "the top level must be a mapping (an object)")])
    schema_problems = []
    for error in _validator().iter_errors(data):
        error, message = _explain(error)
        schema_problems.append((schema_error_line(lines, error), tuple(error.absolute_path), message))
    if schema_problems:
        _raise_problems(filename, schema_problems)
    checks: list[Check] = []
    problems: list[_Problem] = []
    for index, item in enumerate(data["checks"]):
        location: _Location = ("checks", index)
        options = {key: value for key, value in item.items() if key not in _COMMON_KEYS}
        try:
            runner = _RUNNERS[item["kind"]].build(options, location, directory)
        except _Invalid as exc:
            problems.extend(exc.problems)
            continue
        checks.append(
            Check(
                name=item["name"],
                kind=item["kind"],
                timeout=float(item["timeout"]),
                depends_on=tuple(item.get("depends_on", ())),
                options=types.MappingProxyType(options),
                description=item.get("description", ""),
                _runner=runner,
            )
        )
    problems.extend(_dependency_problems(data["checks"]))
    if problems:
        _raise_problems(filename, [(line_for(lines, location), location, reason) for location, reason in problems])
    return Checklist(
        checks=tuple(checks),
        requires_signoff=bool(data.get("requires_signoff", False)),
        max_parallel=int(data.get("max_parallel", DEFAULT_MAX_PARALLEL)),
        name=str(data.get("name", "")),
        filename=filename,
    )


def _explain(error: jsonschema.ValidationError) -> tuple[jsonschema.ValidationError, str]:
    """The error to report, and its message.

    For "one of these shapes" (``oneOf``), the branch the value was written
    for: a list of strings with a number in it is reported at that item,
    not as "not valid under any of the given schemas".
    """
    while error.validator in ("oneOf", "anyOf") and error.context:
        here = list(error.absolute_path)
        deeper = [c for c in error.context if not (c.validator == "type" and list(c.absolute_path) == here)]
        if not deeper:
            expected = " or ".join(repr(c.validator_value) for c in error.context if c.validator == "type")
            return error, f"{_show_repr(error.instance)} is not of type {expected}"
        error = min(deeper, key=lambda c: (-len(c.absolute_path), str(c.message)))
    message = schema_message(error)
    if error.validator == "type" and isinstance(error.instance, bool) and "string" in str(error.validator_value):
        message += " (YAML reads unquoted true, false, yes, no, on and off as booleans: quote it)"
    return error, message


def _raise_problems(filename: str, problems: list[tuple[int | None, _Location, str]]) -> t.NoReturn:
    problems.sort(key=lambda p: (p[0] if p[0] is not None else 0, path_sort_key(p[1])))
    if len(problems) > MAX_REPORTED:
        left_out = len(problems) - MAX_REPORTED
        problems = problems[:MAX_REPORTED] + [(None, (), f"... and {left_out} more problems")]
    raise ConfigFileError(filename, problems)


def _dependency_problems(items: list[dict[str, t.Any]]) -> list[_Problem]:
    """Duplicate names, unknown or self dependencies, and cycles."""
    problems: list[_Problem] = []
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item["name"]
        if name in first:
            problems.append((("checks", index, "name"), f"duplicate check name {name!r} (also checks[{first[name]}])"))
        else:
            first[name] = index
    known = ", ".join(sorted(first)) if len(first) <= 20 else f"{len(first)} checks"
    for index, item in enumerate(items):
        for position, dependency in enumerate(item.get("depends_on", ())):
            location: _Location = ("checks", index, "depends_on", position)
            if dependency == item["name"]:
                problems.append((location, "a check cannot depend on itself"))
            elif dependency not in first:
                problems.append((location, f"unknown check {dependency!r} (checks: {known})"))
    if problems:
        return problems
    # Depth-first search for a cycle; iterative, so long chains cannot
    # exhaust the recursion limit.
    graph = {item["name"]: list(item.get("depends_on", ())) for item in items}
    colour: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in graph:
        if colour.get(start):
            continue
        path = [start]
        iterators = [iter(graph[start])]
        colour[start] = 1
        while iterators:
            following = next(iterators[-1], None)
            if following is None:
                colour[path.pop()] = 2
                iterators.pop()
            elif colour.get(following) == 1:
                cycle = path[path.index(following):] + [following]
                return [(("checks", first[following], "depends_on"), "dependency cycle: " + " -> ".join(cycle))]
            elif not colour.get(following):
                colour[following] = 1
                path.append(following)
                iterators.append(iter(graph[following]))
    return problems


_RUNNERS: dict[str, type[_Runner]] = {
    "http": _HttpProbe,
    "metrics_within_baseline": _MetricsWithinBaseline,
    "gray_switch_closed": _GraySwitchClosed,
    "store_reachable": _StoreReachable,
    "shell": _ShellCommand,
    "python": _PythonCallable,
}
