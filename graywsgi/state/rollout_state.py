"""
Rollout state
=============

What every worker of every host must agree on, beyond the rules: the **kill
switch** (a manual rollback: every canary share is 0 until resumed) and the
state of each route's **breaker** (open routes get no traffic).

Three stores, one interface (:class:`StateStore`):

- :class:`MemoryStateStore` -- one process;
- :class:`FileStateStore` -- every gunicorn worker on a host: a small JSON
  file, written atomically under an advisory lock (``fcntl.flock`` on
  ``<file>.lock``) and read when its ``stat()`` changes, checked at most
  every ``check_interval`` (default 0.05 s) on the request path;
- :class:`graywsgi.state.redis_store.RedisStateStore` -- every host: one Redis
  key, polled at most every ``check_interval`` with a short timeout.

A rollback written to any of them reaches every worker on the store with its
next request after ``check_interval``: well under 100 ms with the defaults.
Nothing here starts a thread or opens a connection before it is first used,
so stores can be built before gunicorn forks.

Times in the shared state are wall-clock (``time.time()``), because
processes do not share a monotonic clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import types
import typing as t
from dataclasses import dataclass, field, replace

from graywsgi.state.polling import Throttle
from graywsgi.errors import ConfigurationError
from graywsgi.rules.plan import PlanState

__all__ = [
    "RouteState",
    "RolloutState",
    "StateStore",
    "MemoryStateStore",
    "FileStateStore",
]

logger = logging.getLogger("graywsgi.state")

_EMPTY: t.Mapping[str, RouteState] = types.MappingProxyType({})


@dataclass(frozen=True)
class RouteState:
    """A route's breaker, as every worker should see it.

    :param open: whether the route's breaker is open (it gets no traffic).
    :param since: when it changed (``time.time()``).
    :param reason: why (``"error rate 41 % over 22 requests"``, ``"manual"``).
    """

    open: bool
    since: float
    reason: str = ""


@dataclass(frozen=True)
class RolloutState:
    """The shared rollout state. Immutable; stores swap whole states.

    :param revision: bumped by every change.
    :param killed: the kill switch: canary shares are 0 while it is set.
    :param since: when the kill switch last changed (``time.time()``).
    :param reason: why.
    :param routes: route name -> :class:`RouteState`.
    :param plan: where the rollout plan stands (:mod:`graywsgi.rules.plan`).
    """

    revision: int = 0
    killed: bool = False
    since: float | None = None
    reason: str = ""
    routes: t.Mapping[str, RouteState] = field(default_factory=lambda: _EMPTY)
    plan: PlanState | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "plan": self.plan.to_dict() if self.plan is not None else None,
                "revision": self.revision,
                "killed": self.killed,
                "since": self.since,
                "reason": self.reason,
                "routes": {
                    name: {"open": r.open, "since": r.since, "reason": r.reason}
                    for name, r in sorted(self.routes.items())
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RolloutState:
        """Parse :meth:`to_json` output.

        :raises ValueError: if the text is not a rollout state.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("rollout state must be a JSON object")
        routes = data.get("routes", {})
        if not isinstance(routes, dict):
            raise ValueError("routes must be an object")
        plan = data.get("plan")
        if plan is not None and not isinstance(plan, dict):
            raise ValueError("plan must be an object")
        try:
            return cls(
                plan=PlanState.from_dict(plan) if plan is not None else None,
                revision=int(data.get("revision", 0)),
                killed=bool(data.get("killed", False)),
                since=None if data.get("since") is None else float(data["since"]),
                reason=str(data.get("reason", "")),
                routes=types.MappingProxyType(
                    {
                        str(name): RouteState(
                            open=bool(r["open"]), since=float(r["since"]), reason=str(r.get("reason", ""))
                        )
                        for name, r in routes.items()
                    }
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed rollout state: {exc}") from None

    def with_kill(self, killed: bool, reason: str, now: float) -> RolloutState:
        return replace(self, killed=killed, reason=reason, since=now)

    def with_route(self, route: str, route_state: RouteState) -> RolloutState:
        routes = dict(self.routes)
        routes[route] = route_state
        return replace(self, routes=types.MappingProxyType(routes))


Change = t.Callable[[RolloutState], RolloutState]


class StateStore:
    """Base class of rollout-state stores.

    Subclasses implement :meth:`current` and :meth:`_update`.
    """

    def current(self) -> RolloutState:
        """The state in force. Cheap; called once per request."""
        raise NotImplementedError

    def _update(self, change: Change) -> RolloutState:
        raise NotImplementedError

    def fetch(self) -> RolloutState:
        """Read the state now, raising if the store cannot be read.

        For tools (the CLI), which must not mistake an unreachable store for
        a clear kill switch; requests use :meth:`current`, which never raises.
        """
        return self.current()

    def update(self, change: Change) -> RolloutState:
        """Apply ``change`` atomically (against other writers) and bump the revision."""
        return self._update(lambda state: replace(change(state), revision=state.revision + 1))

    def rollback(self, reason: str = "manual rollback") -> RolloutState:
        """Set the kill switch: every canary share becomes 0, everywhere."""
        logger.warning("graywsgi rollback: %s", reason)
        return self.update(lambda s: s.with_kill(True, reason, time.time()))

    def resume(self, reason: str = "manual resume") -> RolloutState:
        """Clear the kill switch: configured shares apply again."""
        logger.warning("graywsgi resume: %s", reason)
        return self.update(lambda s: s.with_kill(False, reason, time.time()))

    def set_route(self, route: str, open: bool, reason: str) -> RolloutState:
        """Record a route's breaker as open or closed for every worker."""
        return self.update(lambda s: s.with_route(route, RouteState(open, time.time(), reason)))


class MemoryStateStore(StateStore):
    """Rollout state for one process.

    >>> store = MemoryStateStore()
    >>> store.rollback("bad deploy").killed
    True
    >>> store.resume().killed
    False
    """

    def __init__(self, state: RolloutState | None = None) -> None:
        self._state = state or RolloutState()
        self._lock = threading.Lock()

    def current(self) -> RolloutState:
        return self._state

    def _update(self, change: Change) -> RolloutState:
        with self._lock:
            self._state = change(self._state)
            return self._state


class FileStateStore(StateStore):
    """Rollout state in a JSON file shared by every worker on a host.

    :param path: the state file; created (empty state) if missing.
    :param check_interval: seconds between ``stat()`` calls (default 0.05).
    :param clock: a monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 0.05,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = Throttle(check_interval, clock)
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigurationError(f"{self.path}: directory {directory} does not exist")
        self.check_interval = self._throttle.interval
        self._state = RolloutState()
        self._signature: tuple[int, int, int] | None = None
        self._failed: tuple[int, int, int] | None = None
        self.current()

    def current(self) -> RolloutState:
        self._throttle.maybe(self._read_if_changed)
        return self._state

    def fetch(self) -> RolloutState:
        try:
            with open(self.path, "rb") as handle:
                return RolloutState.from_json(handle.read())
        except FileNotFoundError:
            return RolloutState()
        except ValueError as exc:
            raise ConfigurationError(f"{self.path}: not a rollout state: {exc}") from None

    def _read_if_changed(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return  # nothing written yet: the empty state
        except OSError as exc:
            self._log_failure(None, f"cannot stat: {exc}")
            return
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return
        try:
            with open(self.path, "rb") as handle:
                state = RolloutState.from_json(handle.read())
        except (OSError, ValueError) as exc:
            self._log_failure(signature, str(exc))
            return
        self._signature = signature
        self._failed = None
        if state.revision != self._state.revision:
            self._announce(self._state, state)
        self._state = state

    def _log_failure(self, signature: tuple[int, int, int] | None, problem: str) -> None:
        if signature is None or signature != self._failed:
            self._failed = signature
            logger.error("graywsgi state file %s unreadable, keeping the last state: %s", self.path, problem)

    @staticmethod
    def _announce(old: RolloutState, new: RolloutState) -> None:
        if old.killed != new.killed:
            logger.warning(
                "graywsgi kill switch %s (%s)", "SET: canary shares are 0" if new.killed else "cleared", new.reason
            )

    def _update(self, change: Change) -> RolloutState:
        with self._locked_file():
            current = RolloutState()
            with contextlib.suppress(FileNotFoundError):
                with open(self.path, "rb") as handle:
                    current = RolloutState.from_json(handle.read())
            new = change(current)
            tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(new.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        self._throttle.now(self._read_if_changed)
        return new

    @contextlib.contextmanager
    def _locked_file(self) -> t.Iterator[None]:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
