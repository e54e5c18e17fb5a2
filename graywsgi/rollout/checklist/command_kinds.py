"""
The ``shell`` and ``python`` check kinds
========================================

Checks of the rollback checklist (:mod:`graywsgi.rollout.checklist`) that
run the operator's own code, built on
:mod:`graywsgi.rollout.checklist.kind_base`; the other kinds are in
:mod:`graywsgi.rollout.checklist.http_kinds` and
:mod:`graywsgi.rollout.checklist.state_kinds`.

``shell``
    Runs ``command`` -- an argv list, or a string split with :mod:`shlex`;
    never through a shell unless the command names one (``["sh", "-c",
    "..."]``) -- in its own process group, in ``cwd`` (default: the
    checklist's directory) with ``env`` added to the environment. Passes
    when the exit status is ``expect_exit`` (a number or a list, default 0)
    and, if given, the regular expression ``output_match`` (Python syntax,
    ``re.MULTILINE``) is found in its output (stdout and stderr together;
    the first MiB is searched). On timeout the process is sent SIGTERM, by
    pid and to its process group, and a second later SIGKILL the same way;
    processes left in the group when the command exits are killed too.
``python``
    Imports ``callable`` (``module:function``, the function may be a
    dotted attribute path) when the check runs and calls it with the
    check's ``args`` as keyword arguments. It returns ``True``/``False``,
    or ``(passed, reason)``, or raises (status ``error``). The module must
    be importable (installed, or on ``PYTHONPATH``). A call that outlives
    its timeout is abandoned -- Python cannot stop a thread -- and reported
    ``timed_out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import typing as t

from graywsgi.rollout.checklist.kind_base import (
    _call_with_deadline,
    _Invalid,
    _Location,
    _Problem,
    _Runner,
    _statuses,
    _Verdict,
)
from graywsgi.rollout.checklist.results import CheckStatus
from graywsgi.rollout.checklist.text import _show_choices, _show_repr

__all__: list[str] = []

#: Shell output searched by ``output_match``.
MAX_OUTPUT = 1 << 20

#: Shell output kept in a result's details (the end of it).
OUTPUT_TAIL = 4096

#: Seconds between SIGTERM and SIGKILL for a timed-out command.
KILL_GRACE = 1.0


@dataclasses.dataclass(frozen=True)
class _ShellCommand(_Runner):
    argv: tuple[str, ...]
    cwd: str
    env: t.Mapping[str, str]
    expect_exit: tuple[int, ...]
    output_match: re.Pattern[str] | None

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        problems: list[_Problem] = []
        command = options["command"]
        argv: list[str] = []
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                problems.append(((*location, "command"), f"cannot split the command: {exc}"))
        else:
            argv = list(command)
        if not problems and (not argv or not argv[0]):
            problems.append(((*location, "command"), "the command is empty"))
        if any("\x00" in arg for arg in argv):
            problems.append(((*location, "command"), "the command contains a NUL character"))
        pattern = None
        if "output_match" in options:
            try:
                pattern = re.compile(options["output_match"], re.MULTILINE)
            except re.error as exc:
                problems.append(((*location, "output_match"), f"invalid regular expression: {exc}"))
        if problems:
            raise _Invalid(problems)
        cwd = os.path.normpath(os.path.join(directory, os.path.expanduser(options.get("cwd", "."))))
        return cls(
            argv=tuple(argv),
            cwd=cwd,
            env=dict(options.get("env", {})),
            expect_exit=_statuses(options.get("expect_exit", 0)),
            output_match=pattern,
        )

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        shown = shlex.join(self.argv)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env={**os.environ, **self.env},
                    start_new_session=True,  # its own process group, to kill it whole
                    close_fds=True,
                )
            except OSError as exc:
                return _Verdict(CheckStatus.ERROR, f"cannot run {shown}: {exc.strerror or exc}", {"command": shown})
            pid = process.pid
            timed_out = interrupted = False
            try:
                deadline = time.monotonic() + timeout
                pause = 0.002
                while not _exited(pid):
                    if cancel.is_set():
                        interrupted = True
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        timed_out = True
                        break
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 1.5, 0.05)
                if timed_out or interrupted:
                    _signal(pid, signal.SIGTERM)
                    grace = time.monotonic() + KILL_GRACE
                    while not _exited(pid) and time.monotonic() < grace:
                        time.sleep(0.01)
            finally:
                # The leader is not reaped yet, so its pid still names this
                # group: kill whatever is left in it, then reap.
                _signal(pid, signal.SIGKILL)
                exit_status = process.wait()
            head, tail, size = _read_output(output)
        details: dict[str, t.Any] = {"command": shown, "pid": pid, "exit_status": exit_status, "output": tail}
        if interrupted:
            return _Verdict(CheckStatus.ERROR, f"interrupted; killed process {pid} and its process group", details)
        if timed_out:
            return _Verdict(
                CheckStatus.TIMED_OUT,
                f"still running after {timeout:g}s; killed process {pid} and its process group",
                details,
            )
        last_line = _last_line(tail)
        said = f"; output: {last_line}" if last_line else ""
        if exit_status not in self.expect_exit:
            shown_status = (
                f"killed by signal {-exit_status}" if exit_status < 0 else f"exit status {exit_status}"
            )
            return _Verdict(
                CheckStatus.FAILED, f"{shown_status}, expected {_show_choices(self.expect_exit)}{said}", details
            )
        if self.output_match is not None:
            cut = " (first MiB searched)" if size > MAX_OUTPUT else ""
            if self.output_match.search(head) is None:
                return _Verdict(
                    CheckStatus.FAILED,
                    f"exit status {exit_status} but the output does not match {self.output_match.pattern!r}{cut}{said}",
                    details,
                )
            return _Verdict(
                CheckStatus.PASSED, f"exit status {exit_status}, output matches {self.output_match.pattern!r}", details
            )
        return _Verdict(CheckStatus.PASSED, f"exit status {exit_status}{said}", details)


def _exited(pid: int) -> bool:
    """Whether ``pid`` (our child) has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal(pid: int, signum: int) -> None:
    """Send ``signum`` to the process by pid, then to its process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _read_output(output: t.IO[bytes]) -> tuple[str, str, int]:
    """The first :data:`MAX_OUTPUT` bytes, the last :data:`OUTPUT_TAIL` and the size."""
    size = output.seek(0, os.SEEK_END)
    output.seek(0)
    head = output.read(MAX_OUTPUT).decode("utf-8", "replace")
    output.seek(max(0, size - OUTPUT_TAIL))
    tail = output.read(OUTPUT_TAIL).decode("utf-8", "replace")
    return head, tail, size


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


@dataclasses.dataclass(frozen=True)
class _PythonCallable(_Runner):
    target: str
    args: t.Mapping[str, t.Any]

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(target=options["callable"], args=dict(options.get("args", {})))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(
            name, timeout, cancel, self._call, "the call was abandoned (a Python thread cannot be stopped)"
        )

    def _call(self) -> _Verdict:
        module_name, _, attribute = self.target.partition(":")
        try:
            function: t.Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                function = getattr(function, part)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"cannot import {self.target}: {type(exc).__name__}: {exc}")
        if not callable(function):
            return _Verdict(CheckStatus.ERROR, f"{self.target} is not callable")
        try:
            returned = function(**self.args)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"{self.target} raised {type(exc).__name__}: {exc}")
        if isinstance(returned, bool):
            passed, reason = returned, f"{self.target} returned {returned}"
        elif (
            isinstance(returned, tuple)
            and len(returned) == 2
            and isinstance(returned[0], bool)
            and isinstance(returned[1], str)
        ):
            passed, reason = returned
        else:
            return _Verdict(
                CheckStatus.ERROR,
                f"{self.target} returned {_show_repr(returned)}; expected a bool or a (bool, reason) tuple",
            )
        return _Verdict(CheckStatus.PASSED if passed else CheckStatus.FAILED, reason, {"callable": self.target})
