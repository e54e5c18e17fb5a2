"""graywsgi.rollout.checklist.report: ChecklistReport as JSON, as a text table, saved to a file."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graywsgi.rollout.checklist.running import run_checklist
from tests.rollout.checklist.helpers import load


def test_report_json_has_every_field_with_utc_timestamps(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "name: demo\nrequires_signoff: true\nchecks:\n"
        "  - {name: ok, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: bad, kind: shell, timeout: 5, command: ['false']}\n",
    )
    before = datetime.now(UTC)
    report = run_checklist(checklist, approvers=["alice", "bob"])
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["name"] == "demo"
    assert data["checklist"] == str(tmp_path / "checklist.yaml")
    assert data["signoff"] == {
        "required": True, "status": "granted", "approvers": ["alice", "bob"], "needed": 2,
        "reason": "granted by alice, bob",
    }
    assert data["problems"] == ["1 of 2 checks did not pass: bad (failed)"]
    assert [c["status"] for c in data["checks"]] == ["passed", "failed"]
    for item in [data, *data["checks"]]:
        started = datetime.fromisoformat(item["started_at"])
        finished = datetime.fromisoformat(item["finished_at"])
        assert item["started_at"].endswith("Z") and started.utcoffset() is not None
        assert before - timedelta(seconds=1) <= started <= finished
        assert item["duration"] >= 0
    assert set(data["checks"][0]) == {"name", "kind", "status", "reason", "started_at", "finished_at", "duration", "details"}


def test_report_save(tmp_path: Path) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist)
    target = tmp_path / "report.json"
    report.save(target)
    assert json.loads(target.read_text())["checks"][0]["name"] == "a"
    report.save(target)  # overwrites
    with pytest.raises(FileExistsError):
        report.save(target, overwrite=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_table_lists_every_check_and_escapes_what_a_terminal_would_act_on(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "requires_signoff: true\nchecks:\n"
        "  - {name: ok, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: evil, kind: shell, timeout: 5, command: [printf, 'line one\\n\\033[2Jcleared'], expect_exit: 1}\n",
    )
    report = run_checklist(checklist, approvers=["alice"])
    table = report.format_table()
    lines = table.splitlines()
    narrow = report.format_table(width=60).splitlines()
    assert narrow[2].endswith("...") and len(narrow[2]) <= 60 + 12
    assert re.match(r"CHECK +KIND +STATUS +TIME +REASON", lines[0])
    assert re.match(r"ok +shell +passed +\d+\.\d\ds +exit status 0", lines[1])
    assert re.match(r"evil +shell +failed +\d+\.\d\ds +exit status 0, expected 1; output: \\x1b\[2Jcleared", lines[2])
    assert "\x1b" not in table
    assert lines[-2] == "sign-off: missing: needs 2 distinct approvers, got 1 (alice)"
    assert lines[-1].startswith("result: NOT OK -- 1 of 2 checks did not pass: evil (failed); sign-off missing")
