"""
Running a checklist
===================

:func:`run_checklist` runs the checks of a
:class:`~graywsgi.rollout.checklist.file.Checklist`
(:mod:`graywsgi.rollout.checklist`): in file order as soon as what they
depend on has passed, at most ``max_parallel`` at a time, each within its
own timeout, and returns a
:class:`~graywsgi.rollout.checklist.report.ChecklistReport`. A
:class:`ProgressListener` is told what the run is doing.

Threads and processes
---------------------

Nothing here starts a thread at import. :func:`run_checklist` creates a
bounded thread pool (``max_parallel`` workers) for the run and shuts it
down before it returns; checks whose verdict comes from the network or a
callable run in a daemon thread each, so an abandoned one cannot keep the
process alive. An interrupted run (``KeyboardInterrupt``) kills the
process groups of the shell checks still running.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import typing as t
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

from graywsgi.errors import ConfigurationError
from graywsgi.rollout.checklist.file import Check, Checklist
from graywsgi.rollout.checklist.kind_base import _Verdict
from graywsgi.rollout.checklist.report import ChecklistReport
from graywsgi.rollout.checklist.results import CheckResult, CheckStatus
from graywsgi.rollout.checklist.signoff import check_signoff

__all__ = ["ProgressListener", "RunningCheck", "run_checklist"]

logger = logging.getLogger("graywsgi.checklist")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RunningCheck(t.NamedTuple):
    """A check still running, for :meth:`ProgressListener.on_waiting`."""

    check: Check
    elapsed: float  #: seconds since it started
    timeout: float  #: its timeout, scaled


class ProgressListener:
    """Told what a run is doing; subclass and override what you need.

    Called from the thread that called :func:`run_checklist`; a listener
    that raises is logged and otherwise ignored.
    """

    def on_start(self, check: Check, timeout: float) -> None:
        """``check`` started, with ``timeout`` seconds (scaled)."""

    def on_finish(self, result: CheckResult) -> None:
        """A check reached its verdict, or was skipped."""

    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        """Nothing finished for ``progress_interval`` seconds; these are still running."""


def _notify(listener: ProgressListener | None, method: str, *args: t.Any) -> None:
    if listener is None:
        return
    try:
        getattr(listener, method)(*args)
    except Exception:
        logger.exception("checklist progress listener %s failed", method)


def run_checklist(
    checklist: Checklist,
    *,
    approvers: t.Iterable[str] = (),
    timeout_scale: float = 1.0,
    max_parallel: int | None = None,
    listener: ProgressListener | None = None,
    progress_interval: float = 5.0,
) -> ChecklistReport:
    """Run every check and apply the sign-off rule.

    Checks start in file order as soon as what they depend on has passed,
    at most ``max_parallel`` at a time; a check whose dependency did not
    pass is ``skipped`` (and so, in turn, are its dependents).

    :param approvers: who approved the rollback (checked before anything runs).
    :param timeout_scale: every check's timeout is multiplied by it.
    :param max_parallel: overrides the checklist's ``max_parallel``.
    :param listener: told about starts, verdicts and long waits.
    :param progress_interval: seconds without a verdict before
        :meth:`ProgressListener.on_waiting` is called (and again every as long).
    :raises ApproverError: for an approver name that cannot be recorded.
    :raises ConfigurationError: for a scale, parallelism or interval that cannot work.
    """
    if not (isinstance(timeout_scale, (int, float)) and math.isfinite(timeout_scale) and timeout_scale > 0):
        raise ConfigurationError(f"timeout_scale must be a positive number, got {timeout_scale!r}")
    if not (math.isfinite(progress_interval) and progress_interval > 0):
        raise ConfigurationError(f"progress_interval must be > 0 seconds, got {progress_interval!r}")
    parallel = checklist.max_parallel if max_parallel is None else max_parallel
    if not (isinstance(parallel, int) and parallel >= 1):
        raise ConfigurationError(f"max_parallel must be an integer >= 1, got {parallel!r}")
    signoff = check_signoff(checklist.requires_signoff, approvers)
    started_at, started = _utc_now(), time.monotonic()

    checks = checklist.checks
    order = {check.name: index for index, check in enumerate(checks)}
    by_name = {check.name: check for check in checks}
    waiting_on = {check.name: set(check.depends_on) for check in checks}
    dependents: dict[str, list[str]] = collections.defaultdict(list)
    for check in checks:
        for dependency in check.depends_on:
            dependents[dependency].append(check.name)
    ready = collections.deque(check for check in checks if not check.depends_on)
    results: dict[str, CheckResult] = {}
    running: dict[Future[CheckResult], tuple[Check, float, float]] = {}
    cancel = threading.Event()

    def record(first: CheckResult) -> None:
        pending = [first]
        while pending:
            result = pending.pop(0)
            results[result.name] = result
            _notify(listener, "on_finish", result)
            for name in dependents[result.name]:
                if name in results or any(name == p.name for p in pending):
                    continue
                if result.passed:
                    waiting_on[name].discard(result.name)
                    if not waiting_on[name]:
                        ready.append(by_name[name])
                else:
                    now = _utc_now()
                    pending.append(
                        CheckResult(
                            name=name,
                            kind=by_name[name].kind,
                            status=CheckStatus.SKIPPED,
                            reason=f"dependency {result.name!r} {_status_phrase(result.status)}",
                            started_at=now,
                            finished_at=now,
                            duration=0.0,
                            details={"dependency": result.name, "dependency_status": result.status.value},
                        )
                    )

    workers = max(1, min(parallel, len(checks)))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graywsgi-checklist")
    try:
        while ready or running:
            while ready and len(running) < workers:
                check = ready.popleft()
                if check.name in results:  # skipped while it waited
                    continue
                timeout = check.timeout * timeout_scale
                _notify(listener, "on_start", check, timeout)
                future = executor.submit(_execute, check, timeout, cancel)
                running[future] = (check, time.monotonic(), timeout)
            if not running:
                continue
            done, _ = wait(list(running), timeout=progress_interval, return_when=FIRST_COMPLETED)
            if not done:
                now = time.monotonic()
                _notify(
                    listener,
                    "on_waiting",
                    [RunningCheck(check, now - since, timeout) for check, since, timeout in running.values()],
                )
                continue
            for future in sorted(done, key=lambda f: order[running[f][0].name]):
                running.pop(future)
                record(future.result())
    except BaseException:
        cancel.set()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    for check in checks:  # unreachable with a checked file; never leave a check out
        if check.name not in results:
            moment = _utc_now()
            results[check.name] = CheckResult(
                check.name, check.kind, CheckStatus.ERROR, "never became ready to run", moment, moment, 0.0
            )
    return ChecklistReport(
        checklist=checklist,
        results=tuple(results[check.name] for check in checks),
        signoff=signoff,
        started_at=started_at,
        finished_at=_utc_now(),
        duration=time.monotonic() - started,
        timeout_scale=float(timeout_scale),
    )


def _status_phrase(status: CheckStatus) -> str:
    return {
        CheckStatus.FAILED: "failed",
        CheckStatus.TIMED_OUT: "timed out",
        CheckStatus.ERROR: "could not be checked (error)",
        CheckStatus.SKIPPED: "was skipped",
        CheckStatus.PASSED: "passed",
    }[status]


def _execute(check: Check, timeout: float, cancel: threading.Event) -> CheckResult:
    """Run one check in a pool worker; never raises."""
    started_at, started = _utc_now(), time.monotonic()
    try:
        if check._runner is None:
            raise ConfigurationError(f"check {check.name!r} was not loaded from a checklist file")
        verdict = check._runner.run(check.name, timeout, cancel)
    except Exception as exc:  # a bug here must not lose the other checks
        logger.exception("checklist check %s failed unexpectedly", check.name)
        verdict = _Verdict(CheckStatus.ERROR, f"internal error: {type(exc).__name__}: {exc}")
    return CheckResult(
        name=check.name,
        kind=check.kind,
        status=verdict.status,
        reason=verdict.reason,
        started_at=started_at,
        finished_at=_utc_now(),
        duration=time.monotonic() - started,
        details=verdict.details,
    )
