"""graywsgi.rollout.checklist.command_kinds: the shell and python kinds against real processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from graywsgi.rollout.checklist.results import CheckStatus
from tests.rollout.checklist.helpers import run_one

HERE = "tests.rollout.checklist.test_command_kinds"  # this module, for python checks


def gone_or_zombie(pid: int, within: float = 3.0) -> bool:
    """The process is gone (or dead and waiting for a reaper that is not us)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


# -- python checks called by the tests (module:function) ----------------------------------


def returns_true() -> bool:
    return True


def returns_false() -> bool:
    return False


def returns_reason(threshold: int, value: int) -> tuple[bool, str]:
    return value <= threshold, f"value {value} vs threshold {threshold}"


def raises() -> bool:
    raise RuntimeError("broker unreachable")


def returns_garbage() -> object:
    return {"ok": True}


not_callable = 42

HANG = threading.Event()


def hangs() -> bool:
    HANG.wait(30)
    return True


# -- shell ------------------------------------------------------------------------


def test_shell_passes_on_exit_status_zero(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo all good']\n")
    assert result.status is CheckStatus.PASSED
    assert result.reason == "exit status 0; output: all good"
    assert result.details["exit_status"] == 0 and result.details["output"] == "all good\n"


def test_shell_fails_on_another_exit_status_with_the_output(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo 3 keys left >&2; exit 3']\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason == "exit status 3, expected 0; output: 3 keys left"


def test_shell_expected_exit_statuses(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'exit 3']\n    expect_exit: [1, 3]\n")
    assert result.status is CheckStatus.PASSED


@pytest.mark.parametrize(
    "pattern, status",
    [
        pytest.param("^revision: abc123$", CheckStatus.PASSED, id="matches a line"),
        pytest.param("revision: def456", CheckStatus.FAILED, id="does not match"),
        pytest.param(r"\A\s*\Z", CheckStatus.FAILED, id="empty-output pattern on output"),
    ],
)
def test_shell_output_match(tmp_path: Path, pattern: str, status: CheckStatus) -> None:
    result = run_one(
        tmp_path,
        f"    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo head; echo \"revision: abc123\"']\n"
        f"    output_match: '{pattern}'\n",
    )
    assert result.status is status, result.reason


def test_shell_empty_output_matches_the_empty_pattern(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: ['true']\n    output_match: '\\A\\s*\\Z'\n")
    assert result.status is CheckStatus.PASSED


def test_shell_string_is_split_and_never_run_by_a_shell(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: \"echo 'one arg' ; echo $HOME\"\n")
    assert result.status is CheckStatus.PASSED
    assert result.details["output"] == "one arg ; echo $HOME\n"


def test_shell_runs_in_the_checklist_directory_with_env(tmp_path: Path) -> None:
    result = run_one(
        tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'pwd; echo $GRAY_TEST']\n    env: {GRAY_TEST: hello}\n"
    )
    assert result.details["output"] == f"{os.path.realpath(tmp_path)}\nhello\n"


def test_shell_command_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [graywsgi-no-such-command]\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason.startswith("cannot run graywsgi-no-such-command: No such file or directory")


def test_timed_out_sleep_is_killed_by_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = run_one(
        tmp_path,
        f"    kind: shell\n    timeout: 0.3\n    command: [sh, -c, 'echo $$ > {pid_file}; exec sleep 30']\n",
    )
    took = time.monotonic() - started
    pid = int(pid_file.read_text())
    assert result.status is CheckStatus.TIMED_OUT
    assert result.reason == f"still running after 0.3s; killed process {pid} and its process group"
    assert result.details["pid"] == pid and result.details["exit_status"] == -15  # SIGTERM
    assert 0.3 <= result.duration < 3 and took < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: not even a zombie is left


def test_timed_out_command_takes_its_process_group_with_it(tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    script = f"trap '' TERM; sleep 30 & echo $! > {child_file}; wait"  # both ignore SIGTERM
    result = run_one(tmp_path, f"    kind: shell\n    timeout: 0.3\n    command: [sh, -c, \"{script}\"]\n")
    assert result.status is CheckStatus.TIMED_OUT
    assert result.details["exit_status"] == -9  # SIGKILL after the grace period
    assert gone_or_zombie(int(child_file.read_text()))


def test_background_processes_left_by_a_finished_command_are_killed(tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    result = run_one(
        tmp_path, f"    kind: shell\n    timeout: 5\n    command: [sh, -c, 'sleep 30 & echo $! > {child_file}']\n"
    )
    assert result.status is CheckStatus.PASSED
    assert gone_or_zombie(int(child_file.read_text()))


# -- python -----------------------------------------------------------------------

PYTHON_CASES = [
    pytest.param("returns_true", "", CheckStatus.PASSED, f"{HERE}:returns_true returned True", id="True"),
    pytest.param("returns_false", "", CheckStatus.FAILED, f"{HERE}:returns_false returned False", id="False"),
    pytest.param(
        "returns_reason", "    args: {threshold: 5, value: 3}\n", CheckStatus.PASSED, "value 3 vs threshold 5",
        id="(True, reason) with args",
    ),
    pytest.param(
        "returns_reason", "    args: {threshold: 5, value: 9}\n", CheckStatus.FAILED, "value 9 vs threshold 5",
        id="(False, reason)",
    ),
    pytest.param(
        "raises", "", CheckStatus.ERROR, f"{HERE}:raises raised RuntimeError: broker unreachable", id="raises"
    ),
    pytest.param(
        "returns_garbage", "", CheckStatus.ERROR,
        f"{HERE}:returns_garbage returned {{'ok': True}}; expected a bool or a (bool, reason) tuple",
        id="returns something else",
    ),
    pytest.param(
        "returns_reason", "    args: {nope: 1}\n", CheckStatus.ERROR,
        f"{HERE}:returns_reason raised TypeError: returns_reason() got an unexpected keyword argument 'nope'",
        id="wrong args",
    ),
    pytest.param("not_callable", "", CheckStatus.ERROR, f"{HERE}:not_callable is not callable", id="not callable"),
    pytest.param(
        "no_such_function", "", CheckStatus.ERROR,
        f"cannot import {HERE}:no_such_function: AttributeError: ", id="no such function",
    ),
]


@pytest.mark.parametrize("function, extra, status, reason", PYTHON_CASES)
def test_python_callable(tmp_path: Path, function: str, extra: str, status: CheckStatus, reason: str) -> None:
    result = run_one(tmp_path, f"    kind: python\n    timeout: 5\n    callable: '{HERE}:{function}'\n{extra}")
    assert result.status is status
    assert result.reason.startswith(reason), result.reason


def test_python_module_that_does_not_import_is_an_error(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: python\n    timeout: 5\n    callable: 'graywsgi_no_such_module:check'\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason == (
        "cannot import graywsgi_no_such_module:check: ModuleNotFoundError: No module named 'graywsgi_no_such_module'"
    )


def test_python_callable_that_hangs_times_out(tmp_path: Path) -> None:
    HANG.clear()
    try:
        result = run_one(tmp_path, f"    kind: python\n    timeout: 0.2\n    callable: '{HERE}:hangs'\n")
    finally:
        HANG.set()
    assert result.status is CheckStatus.TIMED_OUT
    assert result.reason == "no verdict within 0.2s; the call was abandoned (a Python thread cannot be stopped)"
    assert 0.2 <= result.duration < 2
