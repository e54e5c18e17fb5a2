"""
The checklist report
====================

What :func:`~graywsgi.rollout.checklist.running.run_checklist` returns
(:mod:`graywsgi.rollout.checklist`): a :class:`ChecklistReport` with every
check's :class:`~graywsgi.rollout.checklist.results.CheckResult` and the
:class:`~graywsgi.rollout.checklist.signoff.Signoff`, whether the rollback
may proceed (:attr:`ChecklistReport.ok`), and the report as a plain-text
table (:meth:`ChecklistReport.format_table`) or as JSON
(:meth:`ChecklistReport.save` writes it).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import threading
import typing as t
from datetime import datetime

from graywsgi.rollout.checklist.file import Checklist
from graywsgi.rollout.checklist.results import CheckResult, CheckStatus, _iso
from graywsgi.rollout.checklist.signoff import Signoff, SignoffStatus
from graywsgi.rollout.checklist.text import _printable

__all__ = ["ChecklistReport"]

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
        from graywsgi._version import __version__

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
