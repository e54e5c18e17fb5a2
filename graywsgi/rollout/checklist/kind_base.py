"""
What every check kind builds on
===============================

A check kind of the rollback checklist (:mod:`graywsgi.rollout.checklist`)
is a ``_Runner``: ``build`` compiles the kind's options from the file
(raising ``_Invalid`` with the problems it found, which
:mod:`graywsgi.rollout.checklist.file` reports with their lines), and
``run`` returns a ``_Verdict`` within the check's timeout. Most kinds run
their work through ``_call_with_deadline``, in a daemon thread each, so an
abandoned one cannot keep the process alive.

The kinds themselves: :mod:`graywsgi.rollout.checklist.http_kinds`,
:mod:`graywsgi.rollout.checklist.state_kinds` and
:mod:`graywsgi.rollout.checklist.command_kinds`.
"""

from __future__ import annotations

import threading
import time
import types
import typing as t

from graywsgi.rollout.checklist.results import CheckStatus

__all__: list[str] = []

_Location = tuple[str | int, ...]
_Path = tuple[str | int, ...]
_Problem = tuple[_Location, str]


class _Invalid(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        self.problems = problems


class _Verdict(t.NamedTuple):
    status: CheckStatus
    reason: str
    details: t.Mapping[str, t.Any] = types.MappingProxyType({})


def _call_with_deadline(
    name: str, timeout: float, cancel: threading.Event, work: t.Callable[[], _Verdict], abandoned: str
) -> _Verdict:
    """Run ``work`` in a daemon thread and wait for it at most ``timeout`` seconds."""
    box: list[_Verdict] = []
    finished = threading.Event()

    def target() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            box.append(_Verdict(CheckStatus.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            finished.set()

    thread = threading.Thread(target=target, name=f"graywsgi-check:{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not finished.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Verdict(CheckStatus.TIMED_OUT, f"no verdict within {timeout:g}s; {abandoned}")
        if cancel.is_set():
            return _Verdict(CheckStatus.ERROR, "interrupted")
        finished.wait(min(remaining, 0.1))
    return box[0]


class _Runner:
    """A compiled check kind."""

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        raise NotImplementedError

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        raise NotImplementedError


def _statuses(value: int | list[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)
