"""
Rollback checklist
==================

A checklist file lists the checks an on-call engineer wants answered around
a rollback -- "is the gray switch closed?", "are the caches clean?", "are
the metrics back at baseline?" -- and :func:`run_checklist` runs them,
concurrently where they do not depend on each other, each within its own
timeout, and returns a :class:`ChecklistReport`: every check's status,
reason, start, end and duration, and whether the rollback has its sign-off.
``graywsgi checklist run FILE`` (:mod:`graywsgi.cli.checklist`) is the
command line around it.

.. code-block:: python

    from graywsgi.rollout.checklist import load_checklist, run_checklist

    checklist = load_checklist("rollback-checklist.yaml")
    report = run_checklist(checklist, approvers=["alice", "bob"])
    print(report.format_table())
    report.save("checklist-report.json")
    if not report.ok:
        raise SystemExit(1)

The file
--------

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

Kinds
-----

``http``
    GET ``url`` (``http://`` or ``https://`` only; redirects are not
    followed). Passes when the status is ``expect_status`` (a number or a
    list, default 200) and, if given, the JSON value at ``json_field``
    equals ``expect_value`` (without ``expect_value``, the field must
    exist; without ``json_field``, ``expect_value`` is compared with the
    whole body). ``headers`` are sent as given; ``bearer_token_env`` names
    an environment variable whose value is sent as
    ``Authorization: Bearer ...`` (tokens stay out of the file).
``metrics_within_baseline``
    GET a status document as served by graywsgi's admin app, i.e.
    :meth:`graywsgi.layers.router.Router.status` with a guard::

        {"breakers": {"canary": {"totals": {"requests": 1000, "errors": 41, "slow": 3}, ...}},
         "baseline": {"requests": 9000, "errors": 27, "slow": 20}}

    and compare ``route``'s error rate (``errors / requests``) with the
    baseline's (the default cluster's traffic over the same window).
    Passes when the route's rate is above the baseline's by at most
    ``max_deviation_percent`` of the baseline rate (10 means "within 10 %
    of baseline": 0.30 % allows up to 0.33 %) or by at most
    ``absolute_margin_percent`` percentage points (default 0) -- the
    margin is what makes an error-free baseline usable, since any error at
    all is an infinite relative deviation from 0. ``direction: either``
    also fails a rate that much *below* the baseline. Fails when either
    side has fewer than ``min_requests`` (default 1) requests. Where the
    numbers are is configurable: ``route_totals`` (default
    ``breakers.{route}.totals``; ``{route}`` is replaced by the route
    name), ``baseline_totals`` (default ``baseline``), the count fields
    ``requests_field`` (default ``requests``) and ``metric`` (default
    ``errors``; ``slow`` compares slow-call rates). A path is a dotted
    string or, for keys that contain dots, a list of keys and indexes.
``gray_switch_closed``
    Reads the rollout state at ``state`` (a file path or
    ``redis://host:port/db#key``, as :func:`graywsgi.state.locations.open_state_store`
    takes). "The gray switch is closed" means *no gray traffic*: the check
    passes when the **kill switch is set** -- every canary share is 0 on
    every worker reading that state -- and fails when it is clear, even if
    some route's breaker is open (a breaker half-opens again after its
    cooldown and lets probes through, so it is not a closed switch).
    ``graywsgi rollback --state ...`` sets the switch.
``store_reachable``
    Passes when the rollout state at ``state`` can be read within the
    timeout (a file store whose file does not exist yet passes: workers
    read that as the empty state, and the reason says so).
``shell``
    Runs ``command`` -- an argv list, or a string split with :mod:`shlex`;
    never through a shell unless the command names one (``["sh", "-c",
    "..."]``) -- in its own process group, in ``cwd`` (default: the
    checklist's directory) with ``env`` added to the environment. Passes
    when the exit status is ``expect_exit`` (a number or a list, default 0)
    and, if given, the regular expression ``output_match`` (Python syntax,
    ``re.MULTILINE``) is found in its output (stdout and stderr together;
    the first MiB is searched). On timeout the process is sent SIGTERM, by
    pid and to its process group, and a second later SIGKILL the same way;
    processes left in the group when the command exits are killed too.
``python``
    Imports ``callable`` (``module:function``, the function may be a
    dotted attribute path) when the check runs and calls it with the
    check's ``args`` as keyword arguments. It returns ``True``/``False``,
    or ``(passed, reason)``, or raises (status ``error``). The module must
    be importable (installed, or on ``PYTHONPATH``). A call that outlives
    its timeout is abandoned -- Python cannot stop a thread -- and reported
    ``timed_out``.

Results
-------

Each :class:`CheckResult` has a status (:class:`CheckStatus`):

- ``passed`` -- the condition holds;
- ``failed`` -- the check ran and the condition does not hold (including
  an unreachable health endpoint or store for ``http`` and
  ``store_reachable``: that *is* what they check);
- ``timed_out`` -- no verdict within the timeout;
- ``error`` -- the check could not reach a verdict (its data source was
  unreachable or malformed, the command could not start, the callable
  raised or returned something else than a verdict);
- ``skipped`` -- a check it depends on did not pass.

Sign-off
--------

With ``requires_signoff: true`` the rollback may proceed only with **two
distinct approvers**: names are trimmed, and compared after Unicode NFKC
normalisation and case folding, so ``Alice`` and `` alice `` are one
person; an empty name (or one with control characters) is rejected with
:class:`ApproverError` before anything runs. The report's sign-off is
``granted``, ``missing`` or ``not_required``; :attr:`ChecklistReport.ok`
is true only when every check passed and the sign-off is not missing.

Threads and processes
---------------------

Nothing here starts a thread at import. :func:`run_checklist` creates a
bounded thread pool (``max_parallel`` workers) for the run and shuts it
down before it returns; checks whose verdict comes from the network or a
callable run in a daemon thread each, so an abandoned one cannot keep the
process alive. An interrupted run (``KeyboardInterrupt``) kills the
process groups of the shell checks still running.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import importlib
import json
import logging
import math
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import types
import typing as t
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import jsonschema

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
from graywsgi.errors import ConfigurationError, GrayError
from graywsgi.rules.routing import json_path
from graywsgi.state.locations import open_state_store
from graywsgi.state.rollout_state import RolloutState

__all__ = [
    "KINDS",
    "REQUIRED_APPROVERS",
    "ApproverError",
    "Check",
    "CheckResult",
    "CheckStatus",
    "Checklist",
    "ChecklistReport",
    "ProgressListener",
    "RunningCheck",
    "Signoff",
    "SignoffStatus",
    "check_signoff",
    "checklist_schema",
    "load_checklist",
    "normalize_approver",
    "parse_checklist",
    "run_checklist",
]

logger = logging.getLogger("graywsgi.checklist")

#: The kinds a check can have.
KINDS = ("http", "metrics_within_baseline", "gray_switch_closed", "store_reachable", "shell", "python")

#: Distinct approvers a rollback that requires sign-off needs.
REQUIRED_APPROVERS = 2

#: Checks running at the same time, unless the file says otherwise.
DEFAULT_MAX_PARALLEL = 4

#: HTTP bodies are read up to this size; a larger one fails the check.
MAX_BODY = 1 << 20

#: Shell output searched by ``output_match``.
MAX_OUTPUT = 1 << 20

#: Shell output kept in a result's details (the end of it).
OUTPUT_TAIL = 4096

#: Seconds between SIGTERM and SIGKILL for a timed-out command.
KILL_GRACE = 1.0

_COMMON_KEYS = frozenset({"name", "kind", "timeout", "description", "depends_on"})

_Location = tuple[str | int, ...]
_Path = tuple[str | int, ...]
_Problem = tuple[_Location, str]


class CheckStatus(enum.StrEnum):
    """What became of a check."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    ERROR = "error"


class SignoffStatus(enum.StrEnum):
    """Whether a rollback has the approvals it needs."""

    GRANTED = "granted"
    MISSING = "missing"
    NOT_REQUIRED = "not_required"


class ApproverError(GrayError, ValueError):
    """An approver name that cannot be recorded (empty, or with control characters)."""


# -- the file ---------------------------------------------------------------


def checklist_schema() -> dict[str, t.Any]:
    """The published JSON Schema of checklist files."""
    return published_schema("checklist.schema.json")


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator("checklist.schema.json")


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of a checklist, as loaded from the file.

    :param name: unique within the checklist.
    :param kind: one of :data:`KINDS`.
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


class _Invalid(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        self.problems = problems


# -- results, sign-off and the report ------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What one check found.

    :param name: the check.
    :param kind: its kind.
    :param status: a :class:`CheckStatus`.
    :param reason: why, in one line a person can act on.
    :param started_at: when it started (UTC).
    :param finished_at: when it reached its verdict (UTC).
    :param duration: seconds (monotonic clock).
    :param details: kind-specific facts (HTTP status, exit status and the
        end of the output, rates compared ...), JSON-serialisable.
    """

    name: str
    kind: str
    status: CheckStatus
    reason: str
    started_at: datetime
    finished_at: datetime
    duration: float
    details: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status.value,
            "reason": self.reason,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration": round(self.duration, 3),
            "details": dict(self.details),
        }


def normalize_approver(name: str) -> str:
    """``name`` trimmed, as it will be recorded.

    :raises ApproverError: if it is empty after trimming, longer than 200
        characters or contains control characters.
    """
    trimmed = name.strip()
    if not trimmed:
        raise ApproverError("an approver name cannot be empty")
    if len(trimmed) > 200:
        raise ApproverError(f"approver name too long ({len(trimmed)} characters, at most 200)")
    if any(unicodedata.category(char) == "Cc" for char in trimmed):
        raise ApproverError(f"approver name {trimmed!r} contains control characters")
    return trimmed


def _identity(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


@dataclasses.dataclass(frozen=True)
class Signoff:
    """Who approved the rollback, and whether that is enough.

    :param required: whether the checklist requires sign-off.
    :param approvers: distinct approvers, trimmed, in the order given
        (the first spelling of each person).
    :param status: a :class:`SignoffStatus`.
    """

    required: bool
    approvers: tuple[str, ...]
    status: SignoffStatus

    @property
    def reason(self) -> str:
        names = ", ".join(self.approvers) if self.approvers else "none"
        if self.status is SignoffStatus.NOT_REQUIRED:
            return f"not required (approvers: {names})"
        if self.status is SignoffStatus.GRANTED:
            return f"granted by {names}"
        return f"missing: needs {REQUIRED_APPROVERS} distinct approvers, got {len(self.approvers)} ({names})"

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "required": self.required,
            "status": self.status.value,
            "approvers": list(self.approvers),
            "needed": REQUIRED_APPROVERS if self.required else 0,
            "reason": self.reason,
        }


def check_signoff(required: bool, approvers: t.Iterable[str]) -> Signoff:
    """Apply the two-approver rule.

    >>> check_signoff(True, ["Alice", " alice "]).status.value
    'missing'
    >>> check_signoff(True, ["Alice", "Bob"]).status.value
    'granted'

    :raises ApproverError: for a name :func:`normalize_approver` rejects.
    """
    distinct: dict[str, str] = {}
    for name in approvers:
        trimmed = normalize_approver(name)
        distinct.setdefault(_identity(trimmed), trimmed)
    names = tuple(distinct.values())
    if not required:
        status = SignoffStatus.NOT_REQUIRED
    elif len(names) >= REQUIRED_APPROVERS:
        status = SignoffStatus.GRANTED
    else:
        status = SignoffStatus.MISSING
    return Signoff(required=required, approvers=names, status=status)


@dataclasses.dataclass(frozen=True)
class ChecklistReport:
    """The outcome of a run.

    :param checklist: what ran.
    :param results: one per check, in the order of the file.
    :param signoff: the sign-off.
    :param started_at: when the run started (UTC).
    :param finished_at: when the last check reached its verdict (UTC).
    :param duration: seconds.
    :param timeout_scale: the factor every timeout was multiplied by.
    """

    checklist: Checklist
    results: tuple[CheckResult, ...]
    signoff: Signoff
    started_at: datetime
    finished_at: datetime
    duration: float
    timeout_scale: float = 1.0

    @property
    def ok(self) -> bool:
        """Every check passed and the sign-off is not missing."""
        return not self.problems

    @property
    def problems(self) -> list[str]:
        """Why the rollback may not proceed; empty when :attr:`ok`."""
        out = []
        not_passed = [r for r in self.results if not r.passed]
        if not_passed:
            out.append(
                f"{len(not_passed)} of {len(self.results)} checks did not pass: "
                + ", ".join(f"{r.name} ({r.status.value})" for r in not_passed)
            )
        if self.signoff.status is SignoffStatus.MISSING:
            out.append(f"sign-off {self.signoff.reason}")
        return out

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        counter = collections.Counter(r.status.value for r in self.results)
        return {status.value: counter.get(status.value, 0) for status in CheckStatus}

    def to_dict(self) -> dict[str, t.Any]:
        from graywsgi import __version__

        return {
            "checklist": self.checklist.filename,
            "name": self.checklist.name,
            "ok": self.ok,
            "problems": self.problems,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration": round(self.duration, 3),
            "timeout_scale": self.timeout_scale,
            "requires_signoff": self.checklist.requires_signoff,
            "signoff": self.signoff.to_dict(),
            "counts": self.counts(),
            "checks": [result.to_dict() for result in self.results],
            "graywsgi_version": __version__,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        """Write :meth:`to_json` to ``path`` atomically.

        :param overwrite: when false, an existing file is an error.
        :raises OSError: if the file cannot be written (``FileExistsError``
            when it exists and ``overwrite`` is false).
        """
        target = os.fspath(path)
        text = self.to_json()
        if not overwrite:  # a new file: nobody reads it before it is complete
            with open(target, "x", encoding="utf-8") as handle:
                handle.write(text)
            return
        tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "x", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def format_table(self, *, width: int | None = None) -> str:
        """The report as a plain-text table, then the sign-off and the verdict.

        :param width: cut the reason column to fit about this many columns
            (a terminal's width); ``None`` cuts nothing.
        """
        rows = [("CHECK", "KIND", "STATUS", "TIME", "REASON")]
        for result in self.results:
            rows.append(
                (
                    _printable(result.name),
                    result.kind,
                    result.status.value,
                    f"{result.duration:.2f}s",
                    _printable(result.reason),
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        room = max(20, width - sum(widths) - 8) if width is not None else None
        lines = []
        for name, kind, status, took, reason in rows:
            if room is not None and len(reason) > room:
                reason = reason[: room - 3] + "..."
            lines.append(
                f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {status:<{widths[2]}}  {took:>{widths[3]}}  {reason}"
                .rstrip()
            )
        lines.append("")
        lines.append(f"sign-off: {_printable(self.signoff.reason)}")
        passed = self.counts()[CheckStatus.PASSED.value]
        if self.ok:
            lines.append(f"result: OK -- {passed} of {len(self.results)} checks passed")
        else:
            lines.append("result: NOT OK -- " + "; ".join(_printable(p) for p in self.problems))
        return "\n".join(lines)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """One line, with no control characters a terminal would act on."""
    text = re.sub(r"\s*[\r\n]+\s*", " | ", text.strip())
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else " ", text)


# -- running ----------------------------------------------------------------------


class RunningCheck(t.NamedTuple):
    """A check still running, for :meth:`ProgressListener.on_waiting`."""

    check: Check
    elapsed: float  #: seconds since it started
    timeout: float  #: its timeout, scaled


class ProgressListener:
    """Told what a run is doing; subclass and override what you need.

    Called from the thread that called :func:`run_checklist`; a listener
    that raises is logged and otherwise ignored.
    """

    def on_start(self, check: Check, timeout: float) -> None:
        """``check`` started, with ``timeout`` seconds (scaled)."""

    def on_finish(self, result: CheckResult) -> None:
        """A check reached its verdict, or was skipped."""

    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        """Nothing finished for ``progress_interval`` seconds; these are still running."""


def _notify(listener: ProgressListener | None, method: str, *args: t.Any) -> None:
    if listener is None:
        return
    try:
        getattr(listener, method)(*args)
    except Exception:
        logger.exception("checklist progress listener %s failed", method)


def run_checklist(
    checklist: Checklist,
    *,
    approvers: t.Iterable[str] = (),
    timeout_scale: float = 1.0,
    max_parallel: int | None = None,
    listener: ProgressListener | None = None,
    progress_interval: float = 5.0,
) -> ChecklistReport:
    """Run every check and apply the sign-off rule.

    Checks start in file order as soon as what they depend on has passed,
    at most ``max_parallel`` at a time; a check whose dependency did not
    pass is ``skipped`` (and so, in turn, are its dependents).

    :param approvers: who approved the rollback (checked before anything runs).
    :param timeout_scale: every check's timeout is multiplied by it.
    :param max_parallel: overrides the checklist's ``max_parallel``.
    :param listener: told about starts, verdicts and long waits.
    :param progress_interval: seconds without a verdict before
        :meth:`ProgressListener.on_waiting` is called (and again every as long).
    :raises ApproverError: for an approver name that cannot be recorded.
    :raises ConfigurationError: for a scale, parallelism or interval that cannot work.
    """
    if not (isinstance(timeout_scale, (int, float)) and math.isfinite(timeout_scale) and timeout_scale > 0):
        raise ConfigurationError(f"timeout_scale must be a positive number, got {timeout_scale!r}")
    if not (math.isfinite(progress_interval) and progress_interval > 0):
        raise ConfigurationError(f"progress_interval must be > 0 seconds, got {progress_interval!r}")
    parallel = checklist.max_parallel if max_parallel is None else max_parallel
    if not (isinstance(parallel, int) and parallel >= 1):
        raise ConfigurationError(f"max_parallel must be an integer >= 1, got {parallel!r}")
    signoff = check_signoff(checklist.requires_signoff, approvers)
    started_at, started = _utc_now(), time.monotonic()

    checks = checklist.checks
    order = {check.name: index for index, check in enumerate(checks)}
    by_name = {check.name: check for check in checks}
    waiting_on = {check.name: set(check.depends_on) for check in checks}
    dependents: dict[str, list[str]] = collections.defaultdict(list)
    for check in checks:
        for dependency in check.depends_on:
            dependents[dependency].append(check.name)
    ready = collections.deque(check for check in checks if not check.depends_on)
    results: dict[str, CheckResult] = {}
    running: dict[Future[CheckResult], tuple[Check, float, float]] = {}
    cancel = threading.Event()

    def record(first: CheckResult) -> None:
        pending = [first]
        while pending:
            result = pending.pop(0)
            results[result.name] = result
            _notify(listener, "on_finish", result)
            for name in dependents[result.name]:
                if name in results or any(name == p.name for p in pending):
                    continue
                if result.passed:
                    waiting_on[name].discard(result.name)
                    if not waiting_on[name]:
                        ready.append(by_name[name])
                else:
                    now = _utc_now()
                    pending.append(
                        CheckResult(
                            name=name,
                            kind=by_name[name].kind,
                            status=CheckStatus.SKIPPED,
                            reason=f"dependency {result.name!r} {_status_phrase(result.status)}",
                            started_at=now,
                            finished_at=now,
                            duration=0.0,
                            details={"dependency": result.name, "dependency_status": result.status.value},
                        )
                    )

    workers = max(1, min(parallel, len(checks)))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graywsgi-checklist")
    try:
        while ready or running:
            while ready and len(running) < workers:
                check = ready.popleft()
                if check.name in results:  # skipped while it waited
                    continue
                timeout = check.timeout * timeout_scale
                _notify(listener, "on_start", check, timeout)
                future = executor.submit(_execute, check, timeout, cancel)
                running[future] = (check, time.monotonic(), timeout)
            if not running:
                continue
            done, _ = wait(list(running), timeout=progress_interval, return_when=FIRST_COMPLETED)
            if not done:
                now = time.monotonic()
                _notify(
                    listener,
                    "on_waiting",
                    [RunningCheck(check, now - since, timeout) for check, since, timeout in running.values()],
                )
                continue
            for future in sorted(done, key=lambda f: order[running[f][0].name]):
                running.pop(future)
                record(future.result())
    except BaseException:
        cancel.set()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    for check in checks:  # unreachable with a checked file; never leave a check out
        if check.name not in results:
            moment = _utc_now()
            results[check.name] = CheckResult(
                check.name, check.kind, CheckStatus.ERROR, "never became ready to run", moment, moment, 0.0
            )
    return ChecklistReport(
        checklist=checklist,
        results=tuple(results[check.name] for check in checks),
        signoff=signoff,
        started_at=started_at,
        finished_at=_utc_now(),
        duration=time.monotonic() - started,
        timeout_scale=float(timeout_scale),
    )


def _status_phrase(status: CheckStatus) -> str:
    return {
        CheckStatus.FAILED: "failed",
        CheckStatus.TIMED_OUT: "timed out",
        CheckStatus.ERROR: "could not be checked (error)",
        CheckStatus.SKIPPED: "was skipped",
        CheckStatus.PASSED: "passed",
    }[status]


class _Verdict(t.NamedTuple):
    status: CheckStatus
    reason: str
    details: t.Mapping[str, t.Any] = types.MappingProxyType({})


def _execute(check: Check, timeout: float, cancel: threading.Event) -> CheckResult:
    """Run one check in a pool worker; never raises."""
    started_at, started = _utc_now(), time.monotonic()
    try:
        if check._runner is None:
            raise ConfigurationError(f"check {check.name!r} was not loaded from a checklist file")
        verdict = check._runner.run(check.name, timeout, cancel)
    except Exception as exc:  # a bug here must not lose the other checks
        logger.exception("checklist check %s failed unexpectedly", check.name)
        verdict = _Verdict(CheckStatus.ERROR, f"internal error: {type(exc).__name__}: {exc}")
    return CheckResult(
        name=check.name,
        kind=check.kind,
        status=verdict.status,
        reason=verdict.reason,
        started_at=started_at,
        finished_at=_utc_now(),
        duration=time.monotonic() - started,
        details=verdict.details,
    )


def _call_with_deadline(
    name: str, timeout: float, cancel: threading.Event, work: t.Callable[[], _Verdict], abandoned: str
) -> _Verdict:
    """Run ``work`` in a daemon thread and wait for it at most ``timeout`` seconds."""
    box: list[_Verdict] = []
    finished = threading.Event()

    def target() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            box.append(_Verdict(CheckStatus.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            finished.set()

    thread = threading.Thread(target=target, name=f"graywsgi-check:{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not finished.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Verdict(CheckStatus.TIMED_OUT, f"no verdict within {timeout:g}s; {abandoned}")
        if cancel.is_set():
            return _Verdict(CheckStatus.ERROR, "interrupted")
        finished.wait(min(remaining, 0.1))
    return box[0]


# -- kinds ---------------------------------------------------------------------------


class _Runner:
    """A compiled check kind."""

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        raise NotImplementedError

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        raise NotImplementedError


def _parse_path(value: str | list[str | int]) -> _Path:
    if isinstance(value, str):
        return tuple(value.split("."))
    return tuple(value)


def _path_problem(value: str | list[str | int], location: _Location) -> list[_Problem]:
    if isinstance(value, str) and any(not part for part in value.split(".")):
        return [(location, f"{value!r} has an empty key; write keys that contain dots as a list")]
    return []


class _Missing(Exception):
    def __init__(self, where: _Path) -> None:
        self.where = where


def _resolve(document: t.Any, path: _Path) -> t.Any:
    """The value at ``path``; a digit string indexes a list.

    :raises _Missing: naming the part of the path that exists.
    """
    value = document
    for depth, part in enumerate(path):
        if isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, list) and (isinstance(part, int) or str(part).isdigit()) and int(part) < len(value):
            value = value[int(part)]
        else:
            raise _Missing(path[: depth + 1])
    return value


def _show_path(path: _Path) -> str:
    return json_path([int(p) if isinstance(p, str) and p.isdigit() else p for p in path])


def _json_equal(a: t.Any, b: t.Any) -> bool:
    """Equality as JSON means it: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _show_value(value: t.Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A probe checks the URL it was given: a 3xx is the answer, not a hop."""

    def redirect_request(self, *args: t.Any, **kwargs: t.Any) -> None:
        return None


class _FetchFailed(Exception):
    def __init__(self, reason: str, timed_out: bool) -> None:
        self.reason = reason
        self.timed_out = timed_out


def _http_get(url: str, headers: t.Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """GET ``url``: the status and at most :data:`MAX_BODY` + 1 bytes of body.

    :raises _FetchFailed: when no response arrives.
    """
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        response: t.Any = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise _FetchFailed(f"cannot reach {url}: {reason}", isinstance(reason, TimeoutError)) from None
    except TimeoutError:
        raise _FetchFailed(f"no response from {url} within {timeout:g}s", True) from None
    except (OSError, ValueError) as exc:  # e.g. a reset connection, a malformed response
        raise _FetchFailed(f"cannot reach {url}: {type(exc).__name__}: {exc}", False) from None
    try:
        with response:
            status = int(response.status if response.status is not None else response.code)
            body = response.read(MAX_BODY + 1)
    except TimeoutError:
        raise _FetchFailed(f"the body from {url} did not arrive within {timeout:g}s", True) from None
    except (OSError, ValueError) as exc:
        raise _FetchFailed(f"cannot read the body from {url}: {type(exc).__name__}: {exc}", False) from None
    return status, body


def _request_headers(headers: t.Mapping[str, str], token_env: str | None) -> dict[str, str]:
    out = {"Accept": "application/json", "User-Agent": "graywsgi-checklist", **headers}
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise _FetchFailed(f"environment variable {token_env} (bearer_token_env) is not set", False)
        if _CONTROL.search(token):
            raise _FetchFailed(f"environment variable {token_env} holds control characters", False)
        out["Authorization"] = f"Bearer {token}"
    return out


def _url_problems(url: str, location: _Location) -> list[_Problem]:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError as exc:
        return [(location, f"malformed URL: {exc}")]
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return [(location, f"{url!r} is not an http:// or https:// URL with a host")]
    return []


def _statuses(value: int | list[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def _show_choices(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else "one of " + ", ".join(map(str, values))


@dataclasses.dataclass(frozen=True)
class _HttpProbe(_Runner):
    url: str
    expect_status: tuple[int, ...]
    field: _Path | None
    expect_value: t.Any
    has_expect_value: bool
    headers: t.Mapping[str, str]
    token_env: str | None

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems = _url_problems(options["url"], (*location, "url"))
        if "json_field" in options:
            problems += _path_problem(options["json_field"], (*location, "json_field"))
        if problems:
            raise _Invalid(problems)
        return cls(
            url=options["url"],
            expect_status=_statuses(options.get("expect_status", 200)),
            field=_parse_path(options["json_field"]) if "json_field" in options else None,
            expect_value=options.get("expect_value"),
            has_expect_value="expect_value" in options,
            headers=dict(options.get("headers", {})),
            token_env=options.get("bearer_token_env"),
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the request was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        try:
            status, body = _http_get(self.url, _request_headers(self.headers, self.token_env), timeout)
        except _FetchFailed as exc:
            return _Verdict(CheckStatus.TIMED_OUT if exc.timed_out else CheckStatus.FAILED, exc.reason)
        details: dict[str, t.Any] = {"url": self.url, "status": status}
        if status not in self.expect_status:
            return _Verdict(
                CheckStatus.FAILED, f"HTTP {status}, expected {_show_choices(self.expect_status)}", details
            )
        if self.field is None and not self.has_expect_value:
            return _Verdict(CheckStatus.PASSED, f"HTTP {status}", details)
        if len(body) > MAX_BODY:
            return _Verdict(CheckStatus.FAILED, f"HTTP {status} but the body is larger than {MAX_BODY} bytes", details)
        try:
            document = json.loads(body)
        except ValueError as exc:
            return _Verdict(CheckStatus.FAILED, f"HTTP {status} but the body is not JSON: {exc}", details)
        where = "the body"
        value = document
        if self.field is not None:
            where = _show_path(self.field)
            try:
                value = _resolve(document, self.field)
            except _Missing as exc:
                return _Verdict(
                    CheckStatus.FAILED, f"HTTP {status} but the body has no {_show_path(exc.where)}", details
                )
        details["value"] = value
        if self.has_expect_value and not _json_equal(value, self.expect_value):
            return _Verdict(
                CheckStatus.FAILED,
                f"HTTP {status} but {where} is {_show_value(value)}, expected {_show_value(self.expect_value)}",
                details,
            )
        return _Verdict(CheckStatus.PASSED, f"HTTP {status}, {where} = {_show_value(value)}", details)


_METRIC_NAMES = {"errors": "error rate", "slow": "slow-call rate"}


@dataclasses.dataclass(frozen=True)
class _MetricsWithinBaseline(_Runner):
    url: str
    headers: t.Mapping[str, str]
    token_env: str | None
    route: str
    max_deviation: float  # a fraction: 0.10 for 10 %
    absolute_margin: float  # a fraction: 0.001 for 0.1 percentage points
    either_direction: bool
    metric: str
    requests_field: str
    route_totals: _Path
    baseline_totals: _Path
    min_requests: int

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems = _url_problems(options["url"], (*location, "url"))
        for key in ("route_totals", "baseline_totals"):
            if key in options:
                problems += _path_problem(options[key], (*location, key))
        if problems:
            raise _Invalid(problems)
        route = options["route"]
        route_totals = tuple(
            part.replace("{route}", route) if isinstance(part, str) else part
            for part in _parse_path(options.get("route_totals", ["breakers", "{route}", "totals"]))
        )
        return cls(
            url=options["url"],
            headers=dict(options.get("headers", {})),
            token_env=options.get("bearer_token_env"),
            route=route,
            max_deviation=float(options["max_deviation_percent"]) / 100,
            absolute_margin=float(options.get("absolute_margin_percent", 0)) / 100,
            either_direction=options.get("direction", "above") == "either",
            metric=options.get("metric", "errors"),
            requests_field=options.get("requests_field", "requests"),
            route_totals=route_totals,
            baseline_totals=_parse_path(options.get("baseline_totals", "baseline")),
            min_requests=int(options.get("min_requests", 1)),
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._compare(timeout), "the request was abandoned")

    def _counts(self, document: t.Any, path: _Path) -> tuple[int, int]:
        try:
            totals = _resolve(document, path)
        except _Missing as exc:
            raise _FetchFailed(f"the status document has no {_show_path(exc.where)}", False) from None
        counts = []
        for field in (self.requests_field, self.metric):
            value = totals.get(field) if isinstance(totals, dict) else None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _FetchFailed(
                    f"{_show_path((*path, field))} is {_show_value(value)}, expected a count (an integer >= 0)", False
                )
            counts.append(value)
        requests, bad = counts
        if bad > requests:
            raise _FetchFailed(f"{_show_path(path)} counts {bad} {self.metric} in {requests} requests", False)
        return requests, bad

    def _compare(self, timeout: float) -> _Verdict:
        try:
            status, body = _http_get(self.url, _request_headers(self.headers, self.token_env), timeout)
            if status != 200:
                raise _FetchFailed(f"status document {self.url}: HTTP {status}", False)
            if len(body) > MAX_BODY:
                raise _FetchFailed(f"status document {self.url} is larger than {MAX_BODY} bytes", False)
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise _FetchFailed(f"status document {self.url} is not JSON: {exc}", False) from None
            route_requests, route_bad = self._counts(document, self.route_totals)
            base_requests, base_bad = self._counts(document, self.baseline_totals)
        except _FetchFailed as exc:
            return _Verdict(CheckStatus.TIMED_OUT if exc.timed_out else CheckStatus.ERROR, exc.reason)
        label = _METRIC_NAMES.get(self.metric, f"{self.metric} rate")
        details: dict[str, t.Any] = {
            "route": self.route,
            "metric": self.metric,
            "route_requests": route_requests,
            "route_count": route_bad,
            "baseline_requests": base_requests,
            "baseline_count": base_bad,
        }
        for who, requests in ((f"route {self.route!r}", route_requests), ("the baseline", base_requests)):
            if requests < self.min_requests:
                return _Verdict(
                    CheckStatus.FAILED,
                    f"{who} has {requests} requests in the window; at least {self.min_requests} needed to compare",
                    details,
                )
        route_rate = route_bad / route_requests if route_requests else 0.0
        base_rate = base_bad / base_requests if base_requests else 0.0
        difference = route_rate - base_rate
        counted = abs(difference) if self.either_direction else difference
        allowed = max(base_rate * self.max_deviation, self.absolute_margin)
        details.update(route_rate=route_rate, baseline_rate=base_rate, allowed_difference=allowed)
        relative = f"{difference / base_rate * 100:+.1f} % relative" if base_rate > 0 else "baseline is 0"
        limit = f"allowed {self.max_deviation * 100:g} %"
        if self.absolute_margin:
            limit += f" or {self.absolute_margin * 100:g} points"
        reason = (
            f"{self.route} {label} {_pct(route_rate)} ({route_bad}/{route_requests}) vs baseline "
            f"{_pct(base_rate)} ({base_bad}/{base_requests}): {relative}, {limit}"
        )
        passed = counted <= allowed + 1e-12
        return _Verdict(CheckStatus.PASSED if passed else CheckStatus.FAILED, reason, details)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


def _state_location(options: dict[str, t.Any], location: _Location, directory: str) -> str:
    state: str = options["state"]
    if state.startswith(("redis://", "rediss://", "unix://")):
        return state
    if "://" in state:
        raise _Invalid([((*location, "state"), f"{state!r}: use a file path or redis://host:port/db#key")])
    return os.path.normpath(os.path.join(directory, os.path.expanduser(state)))


def _fetch_state(location: str, timeout: float) -> RolloutState:
    store = open_state_store(location, check_interval=0, timeout=max(timeout, 0.001))
    return store.fetch()


def _store_problem(exc: BaseException) -> str:
    if isinstance(exc, GrayError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass(frozen=True)
class _StoreReachable(_Runner):
    location: str

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(_state_location(options, location, directory))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the read was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        started = time.monotonic()
        try:
            state = _fetch_state(self.location, timeout)
        except Exception as exc:
            return _Verdict(CheckStatus.FAILED, f"cannot read {self.location}: {_store_problem(exc)}")
        took = time.monotonic() - started
        details = {"state": self.location, "revision": state.revision, "read_seconds": round(took, 4)}
        written = "" if state.revision or "://" in self.location or os.path.exists(self.location) else (
            "; no state written yet (workers read the empty state)"
        )
        return _Verdict(
            CheckStatus.PASSED, f"read {self.location} in {took * 1000:.0f} ms (revision {state.revision}){written}",
            details,
        )


@dataclasses.dataclass(frozen=True)
class _GraySwitchClosed(_Runner):
    location: str

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(_state_location(options, location, directory))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the read was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        try:
            state = _fetch_state(self.location, timeout)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"cannot read {self.location}: {_store_problem(exc)}")
        open_breakers = sorted(route for route, route_state in state.routes.items() if route_state.open)
        details = {
            "state": self.location,
            "killed": state.killed,
            "revision": state.revision,
            "reason": state.reason,
            "since": None if state.since is None else _iso(datetime.fromtimestamp(state.since, UTC)),
            "open_breakers": open_breakers,
        }
        why = f": {state.reason}" if state.reason else ""
        if state.killed:
            since = f" since {details['since']}" if details["since"] else ""
            return _Verdict(
                CheckStatus.PASSED,
                f"kill switch set{since}{why} (revision {state.revision}): every canary share is 0",
                details,
            )
        breakers = (
            f"; open breakers ({', '.join(open_breakers)}) do not count, they half-open after cooldown"
            if open_breakers
            else ""
        )
        return _Verdict(
            CheckStatus.FAILED,
            f"kill switch clear (revision {state.revision}{why}): canary routes still get their shares{breakers}",
            details,
        )


@dataclasses.dataclass(frozen=True)
class _ShellCommand(_Runner):
    argv: tuple[str, ...]
    cwd: str
    env: t.Mapping[str, str]
    expect_exit: tuple[int, ...]
    output_match: re.Pattern[str] | None

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems: list[_Problem] = []
        command = options["command"]
        argv: list[str] = []
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                problems.append(((*location, "command"), f"cannot split the command: {exc}"))
        else:
            argv = list(command)
        if not problems and (not argv or not argv[0]):
            problems.append(((*location, "command"), "the command is empty"))
        if any("\x00" in arg for arg in argv):
            problems.append(((*location, "command"), "the command contains a NUL character"))
        pattern = None
        if "output_match" in options:
            try:
                pattern = re.compile(options["output_match"], re.MULTILINE)
            except re.error as exc:
                problems.append(((*location, "output_match"), f"invalid regular expression: {exc}"))
        if problems:
            raise _Invalid(problems)
        cwd = os.path.normpath(os.path.join(directory, os.path.expanduser(options.get("cwd", "."))))
        return cls(
            argv=tuple(argv),
            cwd=cwd,
            env=dict(options.get("env", {})),
            expect_exit=_statuses(options.get("expect_exit", 0)),
            output_match=pattern,
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        shown = shlex.join(self.argv)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env={**os.environ, **self.env},
                    start_new_session=True,  # its own process group, to kill it whole
                    close_fds=True,
                )
            except OSError as exc:
                return _Verdict(CheckStatus.ERROR, f"cannot run {shown}: {exc.strerror or exc}", {"command": shown})
            pid = process.pid
            timed_out = interrupted = False
            try:
                deadline = time.monotonic() + timeout
                pause = 0.002
                while not _exited(pid):
                    if cancel.is_set():
                        interrupted = True
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        timed_out = True
                        break
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 1.5, 0.05)
                if timed_out or interrupted:
                    _signal(pid, signal.SIGTERM)
                    grace = time.monotonic() + KILL_GRACE
                    while not _exited(pid) and time.monotonic() < grace:
                        time.sleep(0.01)
            finally:
                # The leader is not reaped yet, so its pid still names this
                # group: kill whatever is left in it, then reap.
                _signal(pid, signal.SIGKILL)
                exit_status = process.wait()
            head, tail, size = _read_output(output)
        details: dict[str, t.Any] = {"command": shown, "pid": pid, "exit_status": exit_status, "output": tail}
        if interrupted:
            return _Verdict(CheckStatus.ERROR, f"interrupted; killed process {pid} and its process group", details)
        if timed_out:
            return _Verdict(
                CheckStatus.TIMED_OUT,
                f"still running after {timeout:g}s; killed process {pid} and its process group",
                details,
            )
        last_line = _last_line(tail)
        said = f"; output: {last_line}" if last_line else ""
        if exit_status not in self.expect_exit:
            shown_status = (
                f"killed by signal {-exit_status}" if exit_status < 0 else f"exit status {exit_status}"
            )
            return _Verdict(
                CheckStatus.FAILED, f"{shown_status}, expected {_show_choices(self.expect_exit)}{said}", details
            )
        if self.output_match is not None:
            cut = " (first MiB searched)" if size > MAX_OUTPUT else ""
            if self.output_match.search(head) is None:
                return _Verdict(
                    CheckStatus.FAILED,
                    f"exit status {exit_status} but the output does not match {self.output_match.pattern!r}{cut}{said}",
                    details,
                )
            return _Verdict(
                CheckStatus.PASSED, f"exit status {exit_status}, output matches {self.output_match.pattern!r}", details
            )
        return _Verdict(CheckStatus.PASSED, f"exit status {exit_status}{said}", details)


def _exited(pid: int) -> bool:
    """Whether ``pid`` (our child) has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal(pid: int, signum: int) -> None:
    """Send ``signum`` to the process by pid, then to its process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _read_output(output: t.IO[bytes]) -> tuple[str, str, int]:
    """The first :data:`MAX_OUTPUT` bytes, the last :data:`OUTPUT_TAIL` and the size."""
    size = output.seek(0, os.SEEK_END)
    output.seek(0)
    head = output.read(MAX_OUTPUT).decode("utf-8", "replace")
    output.seek(max(0, size - OUTPUT_TAIL))
    tail = output.read(OUTPUT_TAIL).decode("utf-8", "replace")
    return head, tail, size


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


@dataclasses.dataclass(frozen=True)
class _PythonCallable(_Runner):
    target: str
    args: t.Mapping[str, t.Any]

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(target=options["callable"], args=dict(options.get("args", {})))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(
            name, timeout, cancel, self._call, "the call was abandoned (a Python thread cannot be stopped)"
        )

    def _call(self) -> _Verdict:
        module_name, _, attribute = self.target.partition(":")
        try:
            function: t.Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                function = getattr(function, part)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"cannot import {self.target}: {type(exc).__name__}: {exc}")
        if not callable(function):
            return _Verdict(CheckStatus.ERROR, f"{self.target} is not callable")
        try:
            returned = function(**self.args)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"{self.target} raised {type(exc).__name__}: {exc}")
        if isinstance(returned, bool):
            passed, reason = returned, f"{self.target} returned {returned}"
        elif (
            isinstance(returned, tuple)
            and len(returned) == 2
            and isinstance(returned[0], bool)
            and isinstance(returned[1], str)
        ):
            passed, reason = returned
        else:
            return _Verdict(
                CheckStatus.ERROR,
                f"{self.target} returned {_show_repr(returned)}; expected a bool or a (bool, reason) tuple",
            )
        return _Verdict(CheckStatus.PASSED if passed else CheckStatus.FAILED, reason, {"callable": self.target})


def _show_repr(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_RUNNERS: dict[str, type[_Runner]] = {
    "http": _HttpProbe,
    "metrics_within_baseline": _MetricsWithinBaseline,
    "gray_switch_closed": _GraySwitchClosed,
    "store_reachable": _StoreReachable,
    "shell": _ShellCommand,
    "python": _PythonCallable,
}
