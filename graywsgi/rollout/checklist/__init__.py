"""
Rollback checklist
==================

A checklist file lists the checks an on-call engineer wants answered around
a rollback -- "is the gray switch closed?", "are the caches clean?", "are
the metrics back at baseline?" -- and
:func:`~graywsgi.rollout.checklist.running.run_checklist` runs them,
concurrently where they do not depend on each other, each within its own
timeout, and returns a
:class:`~graywsgi.rollout.checklist.report.ChecklistReport`: every check's
status, reason, start, end and duration, and whether the rollback has its
sign-off. ``graywsgi checklist run FILE`` (:mod:`graywsgi.cli.checklist`) is
the command line around it.

.. code-block:: python

    from graywsgi.rollout.checklist import load_checklist, run_checklist

    checklist = load_checklist("rollback-checklist.yaml")
    report = run_checklist(checklist, approvers=["alice", "bob"])
    print(report.format_table())
    report.save("checklist-report.json")
    if not report.ok:
        raise SystemExit(1)

Every public name is importable from here; each lives in one of these
modules:

- :mod:`graywsgi.rollout.checklist.file` -- the checklist file: its format,
  loading and checking it, :class:`~graywsgi.rollout.checklist.file.Checklist`
  and :class:`~graywsgi.rollout.checklist.file.Check`;
- :mod:`graywsgi.rollout.checklist.http_kinds` -- the ``http`` and
  ``metrics_within_baseline`` kinds;
- :mod:`graywsgi.rollout.checklist.state_kinds` -- the ``gray_switch_closed``
  and ``store_reachable`` kinds;
- :mod:`graywsgi.rollout.checklist.command_kinds` -- the ``shell`` and
  ``python`` kinds;
- :mod:`graywsgi.rollout.checklist.kind_base` -- what every kind builds on;
- :mod:`graywsgi.rollout.checklist.results` -- the check statuses and results;
- :mod:`graywsgi.rollout.checklist.running` -- running a checklist
  (scheduling, concurrency, timeouts, progress);
- :mod:`graywsgi.rollout.checklist.signoff` -- the two-approver rule;
- :mod:`graywsgi.rollout.checklist.report` -- the report, as text or JSON;
- :mod:`graywsgi.rollout.checklist.text` -- one-line text for reasons and
  the report.
"""

from __future__ import annotations

from graywsgi.rollout.checklist.file import (
    KINDS,
    Check,
    Checklist,
    checklist_schema,
    load_checklist,
    parse_checklist,
)
from graywsgi.rollout.checklist.report import ChecklistReport
from graywsgi.rollout.checklist.results import CheckResult, CheckStatus
from graywsgi.rollout.checklist.running import ProgressListener, RunningCheck, run_checklist
from graywsgi.rollout.checklist.signoff import (
    REQUIRED_APPROVERS,
    ApproverError,
    Signoff,
    SignoffStatus,
    check_signoff,
    normalize_approver,
)

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
