"""
The ``gray_switch_closed`` and ``store_reachable`` check kinds
==============================================================

Checks of the rollback checklist (:mod:`graywsgi.rollout.checklist`) that
read the rollout state, built on :mod:`graywsgi.rollout.checklist.kind_base`;
the other kinds are in :mod:`graywsgi.rollout.checklist.http_kinds` and
:mod:`graywsgi.rollout.checklist.command_kinds`.

``gray_switch_closed``
    Reads the rollout state at ``state`` (a file path or
    ``redis://host:port/db#key``, as :func:`graywsgi.state.locations.open_state_store`
    takes). "The gray switch is closed" means *no gray traffic*: the check
    passes when the **kill switch is set** -- every canary share is 0 on
    every worker reading that state -- and fails when it is clear, even if
    some route's breaker is open (a breaker half-opens again after its
    cooldown and lets probes through, so it is not a closed switch).
    ``graywsgi rollback --state ...`` sets the switch.
``store_reachable``
    Passes when the rollout state at ``state`` can be read within the
    timeout (a file store whose file does not exist yet passes: workers
    read that as the empty state, and the reason says so).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import typing as t
from datetime import UTC, datetime

from graywsgi.errors import GrayError
from graywsgi.rollout.checklist.kind_base import _call_with_deadline, _Invalid, _Location, _Runner, _Verdict
from graywsgi.rollout.checklist.results import CheckStatus, _iso
from graywsgi.state.locations import open_state_store
from graywsgi.state.rollout_state import RolloutState

__all__: list[str] = []

def _state_location(options: dict[str, t.Any], location: _Location, directory: str) -> str:
    state: str = options["state"]
    if state.startswith(("redis://", "rediss://", "unix://")):
        return state
    if "://" in state:
        raise _Invalid([((*location, "state"), f"{state!r}: use a file path or redis://host:port/db#key")])
    return os.path.normpath(os.path.join(directory, os.path.expanduser(state)))


def _fetch_state(location: str, timeout: float) -> RolloutState:
    store = open_state_store(location, check_interval=0, timeout=max(timeout, 0.001))
    return store.fetch()


def _store_problem(exc: BaseException) -> str:
    if isinstance(exc, GrayError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass(frozen=True)
class _StoreReachable(_Runner):
    location: str

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(_state_location(options, location, directory))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the read was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        started = time.monotonic()
        try:
            state = _fetch_state(self.location, timeout)
        except Exception as exc:
            return _Verdict(CheckStatus.FAILED, f"cannot read {self.location}: {_store_problem(exc)}")
        took = time.monotonic() - started
        details = {"state": self.location, "revision": state.revision, "read_seconds": round(took, 4)}
        written = "" if state.revision or "://" in self.location or os.path.exists(self.location) else (
            "; no state written yet (workers read the empty state)"
        )
        return _Verdict(
            CheckStatus.PASSED, f"read {self.location} in {took * 1000:.0f} ms (revision {state.revision}){written}",
            details,
        )


@dataclasses.dataclass(frozen=True)
class _GraySwitchClosed(_Runner):
    location: str

    @classmethod
    def build(cls, options: dict[str, t.Any], location: _Location, directory: str) -> _Runner:
        return cls(_state_location(options, location, directory))

    def run(self, name: str, timeout: float, cancel: threading.Event) -> _Verdict:
        return _call_with_deadline(name, timeout, cancel, lambda: self._probe(timeout), "the read was abandoned")

    def _probe(self, timeout: float) -> _Verdict:
        try:
            state = _fetch_state(self.location, timeout)
        except Exception as exc:
            return _Verdict(CheckStatus.ERROR, f"cannot read {self.location}: {_store_problem(exc)}")
        open_breakers = sorted(route for route, route_state in state.routes.items() if route_state.open)
        details = {
            "state": self.location,
            "killed": state.killed,
            "revision": state.revision,
            "reason": state.reason,
            "since": None if state.since is None else _iso(datetime.fromtimestamp(state.since, UTC)),
            "open_breakers": open_breakers,
        }
        why = f": {state.reason}" if state.reason else ""
        if state.killed:
            since = f" since {details['since']}" if details["since"] else ""
            return _Verdict(
                CheckStatus.PASSED,
                f"kill switch set{since}{why} (revision {state.revision}): every canary share is 0",
                details,
            )
        breakers = (
            f"; open breakers ({', '.join(open_breakers)}) do not count, they half-open after cooldown"
            if open_breakers
            else ""
        )
        return _Verdict(
            CheckStatus.FAILED,
            f"kill switch clear (revision {state.revision}{why}): canary routes still get their shares{breakers}",
            details,
        )
