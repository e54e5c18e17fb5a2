"""``graywsgi checklist run`` through its function, with real files."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from graywsgi.cli.checklist import (
    add_checklist_parser,
    default_report_name,
    run_checklist,
)
from graywsgi.state.rollout_state import FileStateStore

HERE = "tests.rollout.checklist.test_running"

PASSING = """\
requires_signoff: true
checks:
  - {name: store-reachable, kind: store_reachable, timeout: 5, state: state.json}
  - {name: gray-switch-closed, kind: gray_switch_closed, timeout: 5, state: state.json, depends_on: [store-reachable]}
  - {name: cache-cleared, kind: shell, timeout: 5, command: "sh -c 'echo 0 keys'", output_match: '^0 keys$'}
  - {name: offsets, kind: python, timeout: 5, callable: 'tests.rollout.checklist.test_command_kinds:returns_true'}
"""


def parser() -> argparse.ArgumentParser:
    """The ``graywsgi`` parser as cli.py wires it: one more subcommand."""
    top = argparse.ArgumentParser(prog="graywsgi")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    add_checklist_parser(commands)
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    assert args.command == "checklist" and args.checklist_command == "run"
    return run_checklist(args)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    FileStateStore(tmp_path / "state.json").rollback("bad deploy")
    (tmp_path / "checklist.yaml").write_text(PASSING, encoding="utf-8")
    return tmp_path


def test_passing_run_prints_the_table_saves_the_report_and_exits_0(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["checklist", "run", "checklist.yaml", "--approver", "alice", "--approver", "bob",
                 "--report", "report.json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = out.splitlines()
    assert re.match(r"CHECK +KIND +STATUS +TIME +REASON$", lines[0])
    assert [line.split()[:3] for line in lines[1:5]] == [
        ["store-reachable", "store_reachable", "passed"],
        ["gray-switch-closed", "gray_switch_closed", "passed"],
        ["cache-cleared", "shell", "passed"],
        ["offsets", "python", "passed"],
    ]
    assert lines[-2:] == ["sign-off: granted by alice, bob", "result: OK -- 4 of 4 checks passed"]
    assert "running 4 checks from checklist.yaml" in err
    assert re.search(r"\[ +\d+\.\ds\] start     gray-switch-closed \(gray_switch_closed, timeout 5s\)", err)
    assert re.search(r"\[ +\d+\.\ds\] passed    offsets \(\d+\.\d\ds\)", err)
    assert f"report saved to {workdir / 'report.json'}" in err
    saved = json.loads((workdir / "report.json").read_text())
    assert saved["ok"] is True and saved["signoff"]["status"] == "granted"
    assert [c["status"] for c in saved["checks"]] == ["passed"] * 4


def test_json_output_is_the_saved_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["checklist", "run", "checklist.yaml", "--json", "--approver", "alice", "--approver", "Bob",
                 "--report", "r.json"])
    out, _ = capsys.readouterr()
    assert code == 0
    printed = json.loads(out)
    assert printed == json.loads((workdir / "r.json").read_text())
    assert printed["signoff"]["approvers"] == ["alice", "Bob"]


def test_failing_check_exits_1(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    FileStateStore(workdir / "state.json").resume()
    code = main(["checklist", "run", "checklist.yaml", "--approver", "alice", "--approver", "bob", "--report", "r.json"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert re.search(r"^gray-switch-closed +gray_switch_closed +failed .* kill switch clear", out, re.MULTILINE)
    assert "result: NOT OK -- 1 of 4 checks did not pass: gray-switch-closed (failed)" in out
    assert json.loads((workdir / "r.json").read_text())["ok"] is False


@pytest.mark.parametrize(
    "approvers, code, signoff",
    [
        pytest.param([], 1, "missing", id="nobody"),
        pytest.param(["alice"], 1, "missing", id="one"),
        pytest.param(["alice", " ALICE "], 1, "missing", id="the same person twice"),
        pytest.param(["alice", "bob"], 0, "granted", id="two"),
    ],
)
def test_signoff_decides_the_exit_code(
    workdir: Path, capsys: pytest.CaptureFixture[str], approvers: list[str], code: int, signoff: str
) -> None:
    argv = ["checklist", "run", "checklist.yaml", "--report", "r.json"]
    for name in approvers:
        argv += ["--approver", name]
    assert main(argv) == code
    out, _ = capsys.readouterr()
    assert f"sign-off: {signoff}" in out
    assert json.loads((workdir / "r.json").read_text())["signoff"]["status"] == signoff


def test_no_signoff_needed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "checklist.yaml").write_text(PASSING.replace("requires_signoff: true", "requires_signoff: false"))
    assert main(["checklist", "run", "checklist.yaml", "--report", "r.json"]) == 0
    assert "sign-off: not required (approvers: none)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        pytest.param(["--approver", ""], "an approver name cannot be empty", id="empty approver"),
        pytest.param(["--approver", "  "], "an approver name cannot be empty", id="blank approver"),
        pytest.param(["--timeout-scale", "0"], "'0' is not a positive number", id="zero scale"),
        pytest.param(["--timeout-scale", "fast"], "'fast' is not a number", id="scale not a number"),
        pytest.param(["--no-such-option"], "unrecognized arguments", id="unknown option"),
    ],
)
def test_usage_errors_exit_2_and_run_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["checklist", "run", "checklist.yaml", *argv])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(workdir.glob("checklist-report-*.json"))


def test_checklist_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["checklist"])
    assert caught.value.code == 2


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["checklist", "run", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for option in ("--approver NAME", "--report PATH", "--json", "--timeout-scale FACTOR"):
        assert option in out


def test_default_report_name_in_the_current_directory(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import graywsgi.rollout.checklist.running

    moment = datetime(2025, 1, 9, 14, 2, 15, 120000, tzinfo=UTC)
    monkeypatch.setattr(graywsgi.rollout.checklist.running, "_utc_now", lambda: moment)
    for _ in range(3):
        assert main(["checklist", "run", "checklist.yaml", "--approver", "a", "--approver", "b"]) == 0
    # Runs in the same second do not overwrite each other.
    assert sorted(p.name for p in workdir.glob("checklist-report-*.json")) == [
        "checklist-report-20250109T140215Z-2.json",
        "checklist-report-20250109T140215Z-3.json",
        "checklist-report-20250109T140215Z.json",
    ]
    assert default_report_name(moment) == "checklist-report-20250109T140215Z.json"
    saved = json.loads((workdir / "checklist-report-20250109T140215Z.json").read_text())
    assert saved["started_at"] == "2025-01-09T14:02:15.120Z"


def test_timeout_scale(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "slow.yaml").write_text(
        f"checks:\n  - {{name: slow, kind: python, timeout: 0.1, callable: '{HERE}:note', "
        "args: {label: cli, sleep: 0.3}}\n"
    )
    assert main(["checklist", "run", "slow.yaml", "--report", "r.json"]) == 1
    assert "timed_out" in capsys.readouterr().out
    assert main(["checklist", "run", "slow.yaml", "--report", "r.json", "--timeout-scale", "20"]) == 0
    assert json.loads((workdir / "r.json").read_text())["timeout_scale"] == 20.0


def test_timed_out_shell_check_in_the_cli(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "sleepy.yaml").write_text("checks:\n  - {name: sleepy, kind: shell, timeout: 0.2, command: [sleep, '30']}\n")
    assert main(["checklist", "run", "sleepy.yaml", "--report", "r.json"]) == 1
    check = json.loads((workdir / "r.json").read_text())["checks"][0]
    assert check["status"] == "timed_out"
    assert check["reason"] == f"still running after 0.2s; killed process {check['details']['pid']} and its process group"


def test_broken_checklist_exits_1_naming_file_line_and_path(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "broken.yaml").write_text("checks:\n  - name: a\n    kind: shell\n    timeout: 0\n    command: [x]\n")
    assert main(["checklist", "run", "broken.yaml"]) == 1
    err = capsys.readouterr().err
    assert "graywsgi checklist: broken.yaml:4: $.checks[0].timeout: 0 is less than or equal to the minimum of 0" in err
    assert not list(workdir.glob("checklist-report-*.json"))


def test_missing_checklist_exits_1(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checklist", "run", "nope.yaml"]) == 1
    assert "graywsgi checklist: nope.yaml: $: cannot read the file: No such file or directory" in capsys.readouterr().err


def test_report_that_cannot_be_written_exits_1_after_printing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["checklist", "run", "checklist.yaml", "--approver", "a", "--approver", "b",
                 "--report", "no-such-dir/r.json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "result: OK" in out
    assert "cannot save the report to no-such-dir/r.json" in err


def test_parsed_arguments(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["checklist", "run", "f.yaml", "--approver", " alice ", "--approver", "bob",
                                "--timeout-scale", "1.5", "--json"])
    assert args.file == "f.yaml" and args.approver == ["alice", "bob"]
    assert args.timeout_scale == 1.5 and args.json and args.report is None


def test_interrupted_run_exits_130(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import graywsgi.cli.checklist

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(graywsgi.cli.checklist, "run", interrupted)
    assert main(["checklist", "run", "checklist.yaml"]) == 130
    assert "interrupted" in capsys.readouterr().err
