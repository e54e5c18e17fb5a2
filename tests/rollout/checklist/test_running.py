"""graywsgi.rollout.checklist.running: run_checklist -- scheduling, concurrency, timeouts, progress."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from graywsgi.rollout.checklist.file import Check
from graywsgi.rollout.checklist.results import CheckResult, CheckStatus
from graywsgi.rollout.checklist.running import (
    ProgressListener,
    RunningCheck,
    run_checklist,
)
from tests.rollout.checklist.helpers import ROOT, load

HERE = "tests.rollout.checklist.test_running"  # this module, for python checks


# -- python checks called by the tests (module:function) ----------------------------------


BARRIER: threading.Barrier | None = None


def meet_at_barrier() -> tuple[bool, str]:
    assert BARRIER is not None
    BARRIER.wait()
    return True, "met the other check"


ORDER: list[str] = []
ORDER_LOCK = threading.Lock()


def note(label: str, sleep: float = 0.0) -> bool:
    time.sleep(sleep)
    with ORDER_LOCK:
        ORDER.append(label)
    return True


# -- timeouts ---------------------------------------------------------------------


def test_timeout_scale_multiplies_every_timeout(tmp_path: Path) -> None:
    checklist = load(tmp_path, f"checks:\n  - {{name: a, kind: python, timeout: 0.1, callable: '{HERE}:note', "
                               "args: {label: a, sleep: 0.3}}\n")
    assert run_checklist(checklist).results[0].status is CheckStatus.TIMED_OUT
    assert run_checklist(checklist, timeout_scale=20).results[0].status is CheckStatus.PASSED


# -- scheduling ---------------------------------------------------------------------


def test_independent_checks_run_at_the_same_time(tmp_path: Path) -> None:
    global BARRIER
    BARRIER = threading.Barrier(3, timeout=5)  # only passes if all three wait at once
    checklist = load(
        tmp_path,
        "checks:\n" + "".join(
            f"  - {{name: c{i}, kind: python, timeout: 10, callable: '{HERE}:meet_at_barrier'}}\n" for i in range(3)
        ),
    )
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED] * 3
    latest_start = max(r.started_at for r in report.results)
    assert all(r.finished_at >= latest_start for r in report.results)


def test_max_parallel_bounds_the_pool(tmp_path: Path) -> None:
    global BARRIER
    BARRIER = threading.Barrier(2, timeout=0.3)
    checklist = load(
        tmp_path,
        "max_parallel: 1\nchecks:\n" + "".join(
            f"  - {{name: c{i}, kind: python, timeout: 5, callable: '{HERE}:meet_at_barrier'}}\n" for i in range(2)
        ),
    )
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.ERROR] * 2  # each waited alone
    assert all("BrokenBarrierError" in r.reason for r in report.results)
    assert report.results[1].started_at >= report.results[0].finished_at


def test_dependent_checks_wait_for_what_they_depend_on(tmp_path: Path) -> None:
    ORDER.clear()
    checklist = load(
        tmp_path,
        "checks:\n"
        f"  - {{name: last, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: last}},"
        " depends_on: [first, second]}\n"
        f"  - {{name: first, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: first, sleep: 0.2}}}}\n"
        f"  - {{name: second, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: second, sleep: 0.1}}}}\n",
    )
    report = run_checklist(checklist)
    assert ORDER == ["second", "first", "last"]
    last, first, second = report.results  # in file order
    assert last.started_at >= max(first.finished_at, second.finished_at)
    assert first.started_at < second.finished_at  # the two independent ones overlapped


def test_a_check_whose_dependency_failed_is_skipped_and_so_are_its_dependents(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 5, command: ['false']}\n"
        "  - {name: b, kind: shell, timeout: 5, command: ['true'], depends_on: [a]}\n"
        "  - {name: c, kind: shell, timeout: 5, command: ['true'], depends_on: [b]}\n"
        "  - {name: d, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: e, kind: shell, timeout: 0.2, command: [sleep, '5']}\n"
        "  - {name: f, kind: shell, timeout: 5, command: ['true'], depends_on: [d, e]}\n",
    )
    report = run_checklist(checklist)
    assert {r.name: (r.status.value, r.reason) for r in report.results if r.status is CheckStatus.SKIPPED} == {
        "b": ("skipped", "dependency 'a' failed"),
        "c": ("skipped", "dependency 'b' was skipped"),
        "f": ("skipped", "dependency 'e' timed out"),
    }
    assert report.results[3].status is CheckStatus.PASSED
    assert report.counts() == {"passed": 1, "failed": 1, "timed_out": 1, "skipped": 3, "error": 0}


def test_the_pool_is_made_per_run_and_gone_afterwards(tmp_path: Path) -> None:
    code = "import threading, graywsgi.rollout.checklist, graywsgi.cli.checklist; print(threading.active_count())"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert imported.stdout.strip() == "1"  # importing starts no thread
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    run_checklist(checklist)
    assert not [th for th in threading.enumerate() if th.name.startswith("graywsgi-checklist")]


class Recorder(ProgressListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.waits: list[list[RunningCheck]] = []

    def on_start(self, check: Check, timeout: float) -> None:
        self.events.append(("start", f"{check.name} {timeout:g}"))

    def on_finish(self, result: CheckResult) -> None:
        self.events.append(("finish", f"{result.name} {result.status.value}"))

    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        self.waits.append(list(running))


def test_progress_while_long_checks_run(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "checks:\n  - {name: slow, kind: shell, timeout: 5, command: [sleep, '0.5']}\n"
        "  - {name: after, kind: shell, timeout: 5, command: ['false'], depends_on: [slow]}\n"
        "  - {name: never, kind: shell, timeout: 5, command: ['true'], depends_on: [after]}\n",
    )
    recorder = Recorder()
    run_checklist(checklist, listener=recorder, progress_interval=0.1, timeout_scale=2)
    assert recorder.events == [
        ("start", "slow 10"),
        ("finish", "slow passed"),
        ("start", "after 10"),
        ("finish", "after failed"),
        ("finish", "never skipped"),
    ]
    assert len(recorder.waits) >= 2
    assert all(w[0].check.name == "slow" and w[0].timeout == 10 for w in recorder.waits)
    assert recorder.waits[-1][0].elapsed > recorder.waits[0][0].elapsed


class Broken(ProgressListener):
    def on_finish(self, result: CheckResult) -> None:
        raise RuntimeError("listener bug")


def test_a_listener_that_raises_breaks_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist, listener=Broken())
    assert report.ok
    assert "progress listener on_finish failed" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"timeout_scale": 0}, id="zero scale"),
        pytest.param({"timeout_scale": float("nan")}, id="nan scale"),
        pytest.param({"max_parallel": 0}, id="no workers"),
        pytest.param({"progress_interval": 0}, id="zero interval"),
    ],
)
def test_run_options_that_cannot_work(tmp_path: Path, kwargs: dict[str, t.Any]) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    with pytest.raises(ValueError):
        run_checklist(checklist, **kwargs)


class Interrupt(ProgressListener):
    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_run_kills_the_commands_still_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    checklist = load(
        tmp_path, f"checks:\n  - {{name: a, kind: shell, timeout: 60, command: [sh, -c, 'echo $$ > {pid_file}; exec sleep 60']}}\n"
    )
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_checklist(checklist, listener=Interrupt(), progress_interval=0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
