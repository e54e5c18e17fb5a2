"""graywsgi.rollout.checklist.signoff: the two-approver rule, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from graywsgi.rollout.checklist.running import run_checklist
from graywsgi.rollout.checklist.signoff import (
    ApproverError,
    SignoffStatus,
    check_signoff,
)
from tests.rollout.checklist.helpers import load

SIGNOFF_CASES = [
    pytest.param(True, [], SignoffStatus.MISSING, (), id="required, nobody"),
    pytest.param(True, ["alice"], SignoffStatus.MISSING, ("alice",), id="required, one"),
    pytest.param(True, ["alice", "bob"], SignoffStatus.GRANTED, ("alice", "bob"), id="required, two"),
    pytest.param(True, ["alice", "Alice"], SignoffStatus.MISSING, ("alice",), id="same name, other case"),
    pytest.param(True, ["alice", "  ALICE\t"], SignoffStatus.MISSING, ("alice",), id="same name, padded"),
    pytest.param(True, ["Straße", "STRASSE"], SignoffStatus.MISSING, ("Straße",), id="case folding, not lower()"),
    pytest.param(True, ["ａlice", "alice"], SignoffStatus.MISSING, ("ａlice",), id="fullwidth is the same person"),
    pytest.param(True, [" alice ", "bob", "carol"], SignoffStatus.GRANTED, ("alice", "bob", "carol"), id="three"),
    pytest.param(True, ["alice", "alice", "bob"], SignoffStatus.GRANTED, ("alice", "bob"), id="repeat + another"),
    pytest.param(False, [], SignoffStatus.NOT_REQUIRED, (), id="not required, nobody"),
    pytest.param(False, ["alice"], SignoffStatus.NOT_REQUIRED, ("alice",), id="not required, recorded anyway"),
]


@pytest.mark.parametrize("required, names, status, recorded", SIGNOFF_CASES)
def test_two_distinct_approvers(
    required: bool, names: list[str], status: SignoffStatus, recorded: tuple[str, ...]
) -> None:
    signoff = check_signoff(required, names)
    assert signoff.status is status
    assert signoff.approvers == recorded


@pytest.mark.parametrize(
    "name",
    [pytest.param("", id="empty"), pytest.param("   ", id="blank"), pytest.param("bob\nalice", id="newline"),
     pytest.param("x" * 201, id="too long")],
)
def test_unusable_approver_names_are_rejected(name: str) -> None:
    with pytest.raises(ApproverError):
        check_signoff(True, ["alice", name])


def test_signoff_is_checked_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    checklist = load(tmp_path, f"checks:\n  - {{name: a, kind: shell, timeout: 5, command: [touch, '{marker}']}}\n")
    with pytest.raises(ApproverError):
        run_checklist(checklist, approvers=["alice", ""])
    assert not marker.exists()


def test_missing_signoff_fails_the_report_even_when_checks_pass(tmp_path: Path) -> None:
    checklist = load(tmp_path, "requires_signoff: true\nchecks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist, approvers=["alice", "ALICE"])
    assert report.results[0].passed
    assert report.signoff.status is SignoffStatus.MISSING
    assert not report.ok
    assert report.problems == ["sign-off missing: needs 2 distinct approvers, got 1 (alice)"]
    granted = run_checklist(checklist, approvers=["alice", "bob"])
    assert granted.ok and granted.signoff.status is SignoffStatus.GRANTED
