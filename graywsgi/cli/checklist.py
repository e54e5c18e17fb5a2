"""
``graywsgi checklist``
======================

.. code-block:: text

    graywsgi checklist run FILE [--approver NAME]... [--report PATH] [--json]
                                [--timeout-scale FACTOR]

Runs the rollback checklist in ``FILE`` (:mod:`graywsgi.rollout.checklist`): the
checks run concurrently where they do not depend on each other, progress
goes to stderr while they run, and the report is printed as a table (or,
with ``--json``, as the JSON document) and saved as JSON to ``--report``
(default ``checklist-report-<UTC timestamp>.json`` in the current
directory, never overwriting an existing file).

``--approver`` is given once per person. When the checklist has
``requires_signoff: true`` the rollback needs two distinct approvers
(names compared case-insensitively after trimming); an empty name is a
usage error. ``--timeout-scale 2`` doubles every check's timeout (a slow
network, a loaded host).

Exit codes: 0 every check passed and the sign-off (if required) is
granted; 1 a check did not pass, the sign-off is missing, the checklist
file is broken or the report cannot be written; 2 the command line is
wrong; 130 interrupted (the shell checks still running are killed).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import time
import typing as t
from datetime import datetime

from graywsgi.rollout.checklist import (
    ApproverError,
    Check,
    CheckResult,
    ProgressListener,
    RunningCheck,
    load_checklist,
    normalize_approver,
)
from graywsgi.rollout.checklist import (
    run_checklist as run,
)
from graywsgi.errors import ConfigurationError

__all__ = ["add_checklist_parser", "default_report_name", "run_checklist"]

#: Seconds without a verdict before the checks still running are listed.
PROGRESS_INTERVAL = 5.0


def _approver(text: str) -> str:
    try:
        return normalize_approver(text)
    except ApproverError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def add_checklist_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``checklist run`` to the ``graywsgi`` command's subparsers."""
    checklist = subparsers.add_parser(
        "checklist",
        help="run the rollback checklist",
        description="Run a rollback checklist: built-in checks (HTTP probe, metrics within baseline, "
        "gray switch closed, store reachable) and your own (shell command, Python callable), "
        "with two-approver sign-off and a JSON report.",
    )
    actions = checklist.add_subparsers(dest="checklist_command", metavar="ACTION")
    actions.required = True
    command = actions.add_parser(
        "run",
        help="run every check of a checklist file and save the report",
        description="Run every check of a checklist file, concurrently where independent; print the "
        "report and save it as JSON. Exit status 0 when every check passed and the sign-off "
        "(if required) is granted, 1 otherwise, 2 for a wrong command line.",
    )
    command.add_argument("file", metavar="FILE", help="the checklist (YAML or JSON)")
    command.add_argument(
        "--approver", action="append", default=[], type=_approver, metavar="NAME",
        help="a person approving the rollback; repeat for each (two distinct ones when the "
        "checklist requires sign-off)",
    )
    command.add_argument(
        "--report", metavar="PATH",
        help="where to save the JSON report (default: checklist-report-<UTC timestamp>.json here)",
    )
    command.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    command.add_argument(
        "--timeout-scale", type=_scale, default=1.0, metavar="FACTOR",
        help="multiply every check's timeout by FACTOR (default 1)",
    )


def default_report_name(moment: datetime, attempt: int = 1) -> str:
    """``checklist-report-20240501T120000Z.json`` for a UTC ``datetime``;
    ``...Z-2.json`` for the second attempt, and so on."""
    suffix = "" if attempt == 1 else f"-{attempt}"
    return f"checklist-report-{moment.strftime('%Y%m%dT%H%M%SZ')}{suffix}.json"


class _StderrProgress(ProgressListener):
    """One line per start and verdict, and the checks still running on long waits."""

    def __init__(self, stream: t.TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=self.stream, flush=True)

    def on_start(self, check: Check, timeout: float) -> None:
        self._say(f"start     {check.name} ({check.kind}, timeout {timeout:g}s)")

    def on_finish(self, result: CheckResult) -> None:
        self._say(f"{result.status.value:<9} {result.name} ({result.duration:.2f}s)")

    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        self._say(
            "waiting   "
            + ", ".join(f"{r.check.name} ({r.elapsed:.0f}s of {r.timeout:g}s)" for r in running)
        )


def run_checklist(args: argparse.Namespace) -> int:
    """Run ``graywsgi checklist run``; return the exit code."""
    try:
        checklist = load_checklist(args.file)
    except ConfigurationError as exc:
        print(f"graywsgi checklist: {exc}", file=sys.stderr)
        return 1
    print(
        f"graywsgi checklist: running {len(checklist.checks)} checks from {args.file} "
        f"(at most {checklist.max_parallel} at a time)",
        file=sys.stderr,
    )
    # The stores log what the workers should know; here each check's
    # reason says it, once.
    quiet = logging.getLogger("graywsgi")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        report = run(
            checklist,
            approvers=args.approver,
            timeout_scale=args.timeout_scale,
            listener=_StderrProgress(sys.stderr),
            progress_interval=PROGRESS_INTERVAL,
        )
    except KeyboardInterrupt:
        print("graywsgi checklist: interrupted; running commands were killed", file=sys.stderr)
        return 130
    except (ConfigurationError, ApproverError) as exc:  # argparse catches bad names first
        print(f"graywsgi checklist: {exc}", file=sys.stderr)
        return 2
    finally:
        quiet.setLevel(level)
    if args.json:
        sys.stdout.write(report.to_json())
    else:
        width = max(100, shutil.get_terminal_size().columns) if sys.stdout.isatty() else None
        print(report.format_table(width=width))
    sys.stdout.flush()
    status = 0 if report.ok else 1
    path = args.report or default_report_name(report.started_at)
    try:
        if args.report:
            report.save(path)
        else:
            for attempt in range(2, 101):
                try:
                    report.save(path, overwrite=False)
                    break
                except FileExistsError:  # another run in the same second
                    path = default_report_name(report.started_at, attempt)
            else:
                raise FileExistsError(f"{path} and the names before it exist")
    except OSError as exc:
        print(f"graywsgi checklist: cannot save the report to {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"graywsgi checklist: report saved to {os.path.abspath(path)}", file=sys.stderr)
    return status
