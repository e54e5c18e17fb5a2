"""
Check results
=============

What became of each check of a rollback checklist
(:mod:`graywsgi.rollout.checklist`): the runner
(:mod:`graywsgi.rollout.checklist.running`) makes one :class:`CheckResult`
per check, and the report (:mod:`graywsgi.rollout.checklist.report`)
collects them.

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
"""

from __future__ import annotations

import dataclasses
import enum
import typing as t
from datetime import UTC, datetime

__all__ = ["CheckResult", "CheckStatus"]


class CheckStatus(enum.StrEnum):
    """What became of a check."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    ERROR = "error"


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
