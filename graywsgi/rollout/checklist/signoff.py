"""
Sign-off
========

Who approved a rollback, and whether that is enough to proceed
(:mod:`graywsgi.rollout.checklist`). The runner
(:mod:`graywsgi.rollout.checklist.running`) checks the approvers before
anything runs; the report (:mod:`graywsgi.rollout.checklist.report`)
records the :class:`Signoff`.

With ``requires_signoff: true`` the rollback may proceed only with **two
distinct approvers**: names are trimmed, and compared after Unicode NFKC
normalisation and case folding, so ``Alice`` and `` alice `` are one
person; an empty name (or one with control characters) is rejected with
:class:`ApproverError` before anything runs. The report's sign-off is
``granted``, ``missing`` or ``not_required``;
:attr:`ChecklistReport.ok <graywsgi.rollout.checklist.report.ChecklistReport.ok>`
is true only when every check passed and the sign-off is not missing.
"""

from __future__ import annotations

import dataclasses
import enum
import typing as t
import unicodedata

from graywsgi.errors import GrayError

__all__ = [
    "REQUIRED_APPROVERS",
    "ApproverError",
    "Signoff",
    "SignoffStatus",
    "check_signoff",
    "normalize_approver",
]

#: Distinct approvers a rollback that requires sign-off needs.
REQUIRED_APPROVERS = 2


class SignoffStatus(enum.StrEnum):
    """Whether a rollback has the approvals it needs."""

    GRANTED = "granted"
    MISSING = "missing"
    NOT_REQUIRED = "not_required"


class ApproverError(GrayError, ValueError):
    """An approver name that cannot be recorded (empty, or with control characters)."""


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
