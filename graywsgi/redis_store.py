"""
Redis stores
============

For a fleet: every worker of every host reads the same Redis. Install with
``pip install 'graywsgi[redis]'`` (redis-py).

- :class:`RedisStateStore` -- the rollout state (kill switch, breakers) in
  one key, polled at most every ``check_interval`` (default 0.05 s).
- :class:`RedisRuleStore` -- the rule set (as JSON) in one key, polled at
  most every ``check_interval`` (default 1 s); :meth:`RedisRuleStore.publish`
  checks a rule set before it writes it.

Both poll on the request path -- no thread, no pub/sub connection to keep
alive -- with short socket timeouts (default 50 ms), so a slow or dead Redis
costs a request at most that, once per interval. The connection is made
lazily in the process that uses it, so stores can be built before gunicorn
forks, and a forked worker never shares its parent's socket.

If Redis is unreachable, workers keep the last state and rules they knew,
log it once (and once more when Redis answers again), and keep serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import typing as t

from graywsgi.config import parse_rules
from graywsgi.errors import ConfigurationError
from graywsgi.routing import CompiledRules
from graywsgi.rules import RuleSet
from graywsgi.state import Change, RolloutState, StateStore
from graywsgi.store import RuleStore, as_store

if t.TYPE_CHECKING:  # pragma: no cover
    import redis

__all__ = ["RedisStateStore", "RedisRuleStore"]

logger = logging.getLogger("graywsgi.redis")


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


class _Connection:
    """A redis-py client made lazily, once per process, with short timeouts."""

    def __init__(self, url: str, timeout: float) -> None:
        try:
            import redis as redis_module
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigurationError("Redis stores need redis-py: pip install 'graywsgi[redis]'") from None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"not a Redis URL: {url!r} (redis://host:port/db)")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._redis = redis_module
        self.url = url
        self.timeout = float(timeout)
        self._client: redis.Redis | None = None
        self._pid = 0
        self._unreachable = False

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (self._redis.RedisError, OSError)

    def client(self) -> redis.Redis:
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            self._client = self._redis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._pid = pid
        return self._client

    def failed(self, what: str, exc: BaseException) -> None:
        if not self._unreachable:
            self._unreachable = True
            logger.error("graywsgi Redis %s unreachable (%s: %s); keeping the last known %s",
                         self.url, type(exc).__name__, exc, what)

    def succeeded(self) -> None:
        if self._unreachable:
            self._unreachable = False
            logger.warning("graywsgi Redis %s reachable again", self.url)


class RedisStateStore(StateStore):
    """The rollout state in Redis, shared by every host.

    :param url: ``redis://host:port/db``.
    :param key: the key holding the state (JSON).
    :param check_interval: seconds between reads on the request path.
    :param timeout: socket timeout for reads on the request path.
    :param clock: a monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key: str = "graywsgi:state",
        check_interval: float = 0.05,
        timeout: float = 0.05,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if not check_interval >= 0:
            raise ConfigurationError(f"check_interval must be >= 0 seconds, got {check_interval!r}")
        self._connection = _Connection(url, timeout)
        self.key = key
        self.check_interval = float(check_interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = RolloutState()
        self._raw: bytes | None = None
        self._next_check = 0.0

    def current(self) -> RolloutState:
        if self._clock() < self._next_check:
            return self._state
        if not self._lock.acquire(blocking=False):
            return self._state
        try:
            self._next_check = self._clock() + self.check_interval
            self._read()
        finally:
            self._lock.release()
        return self._state

    def _read(self) -> None:
        connection = self._connection
        try:
            raw = _as_bytes(connection.client().get(self.key))
        except connection.errors as exc:
            connection.failed("rollout state", exc)
            return
        connection.succeeded()
        if raw is None or raw == self._raw:
            return
        try:
            state = RolloutState.from_json(raw)
        except ValueError as exc:
            logger.error("graywsgi Redis key %s holds no rollout state (%s); keeping the last", self.key, exc)
            self._raw = raw
            return
        if state.killed != self._state.killed:
            logger.warning("graywsgi kill switch %s (%s)", "SET" if state.killed else "cleared", state.reason)
        self._raw = raw
        self._state = state

    def fetch(self) -> RolloutState:
        raw = _as_bytes(self._connection.client().get(self.key))
        return RolloutState.from_json(raw) if raw else RolloutState()

    def _update(self, change: Change) -> RolloutState:
        import redis as redis_module

        client = self._connection.client()
        with client.pipeline() as pipe:
            for _ in range(100):
                try:
                    pipe.watch(self.key)  # type: ignore[no-untyped-call]
                    raw = _as_bytes(pipe.get(self.key))
                    current = RolloutState.from_json(raw) if raw else RolloutState()
                    new = change(current)
                    pipe.multi()
                    pipe.set(self.key, new.to_json())
                    pipe.execute()
                    break
                except redis_module.WatchError:
                    continue
            else:  # pragma: no cover - 100 concurrent writers in a row
                raise ConfigurationError(f"could not update {self.key}: too much contention")
        with self._lock:
            self._next_check = 0.0
            self._read()
        return new


class RedisRuleStore(RuleStore):
    """The rule set in Redis, shared by every host.

    :param url: ``redis://host:port/db``.
    :param initial: the rules in force until Redis first answers (a rule
        set, a store or a rule file path) -- so a worker can start, and
        serve, while Redis is down.
    :param key: the key holding the rule set (JSON, as
        :meth:`~graywsgi.rules.RuleSet.to_dict`).
    :param check_interval: seconds between reads on the request path.
    :param timeout: socket timeout for reads on the request path.
    """

    def __init__(
        self,
        url: str,
        *,
        initial: RuleStore | RuleSet | CompiledRules | str | os.PathLike[str],
        key: str = "graywsgi:rules",
        check_interval: float = 1.0,
        timeout: float = 0.05,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if not check_interval >= 0:
            raise ConfigurationError(f"check_interval must be >= 0 seconds, got {check_interval!r}")
        self._connection = _Connection(url, timeout)
        self.key = key
        self.check_interval = float(check_interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._rules = as_store(initial).current()
        self._raw: bytes | None = None
        self._next_check = 0.0

    def current(self) -> CompiledRules:
        if self._clock() < self._next_check:
            return self._rules
        if not self._lock.acquire(blocking=False):
            return self._rules
        try:
            self._next_check = self._clock() + self.check_interval
            self._read()
        finally:
            self._lock.release()
        return self._rules

    def _read(self) -> None:
        connection = self._connection
        try:
            raw = _as_bytes(connection.client().get(self.key))
        except connection.errors as exc:
            connection.failed("rules", exc)
            return
        connection.succeeded()
        if raw is None or raw == self._raw:
            return
        self._raw = raw
        try:
            rules = parse_rules(raw, filename=f"redis key {self.key}", format="json")
        except ConfigurationError as exc:
            logger.error("graywsgi rules NOT reloaded from Redis, keeping %s in force: %s",
                         self._rules.version_id, exc)
            return
        previous = self._rules.version_id
        self._rules = rules
        logger.info("graywsgi rules %s in force (was %s; Redis key %s)", rules.version_id, previous, self.key)

    def publish(self, rules: RuleSet | CompiledRules) -> CompiledRules:
        """Check ``rules`` and write them for every worker; return them compiled.

        :raises ConfigurationError: if the rule set is invalid (nothing is written).
        """
        import json

        compiled = rules if isinstance(rules, CompiledRules) else CompiledRules(rules)
        self._connection.client().set(self.key, json.dumps(compiled.ruleset.to_dict(), sort_keys=True))
        with self._lock:
            self._next_check = 0.0
            self._read()
        return compiled
