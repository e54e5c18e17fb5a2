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
- :class:`RedisFleetWindow` -- optional fleet-wide breaker counts, so a trip
  decision sees every worker's traffic (``Guard(window_factory=...)``).

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

from graywsgi.state.polling import Throttle
from graywsgi.rules.files import parse_rules
from graywsgi.errors import ConfigurationError
from graywsgi.rules.routing import CompiledRules
from graywsgi.rules.model import RuleSet
from graywsgi.state.rollout_state import Change, RolloutState, StateStore
from graywsgi.state.rule_store import RuleStore, as_store
from graywsgi.core.window import SlidingWindow, WindowTotals

if t.TYPE_CHECKING:  # pragma: no cover
    import redis

__all__ = ["RedisStateStore", "RedisRuleStore", "RedisFleetWindow"]

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

    def changed(self, key: str, last: bytes | None, what: str) -> bytes | None:
        """The key's value if it differs from ``last``; ``None`` when it is
        unchanged, missing, or Redis is unreachable (logged once)."""
        try:
            raw = _as_bytes(self.client().get(key))
        except self.errors as exc:
            self.failed(what, exc)
            return None
        self.succeeded()
        return None if raw is None or raw == last else raw

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
        self._throttle = Throttle(check_interval, clock)
        self._connection = _Connection(url, timeout)
        self.key = key
        self.check_interval = self._throttle.interval
        self._state = RolloutState()
        self._raw: bytes | None = None

    def current(self) -> RolloutState:
        self._throttle.maybe(self._read)
        return self._state

    def _read(self) -> None:
        raw = self._connection.changed(self.key, self._raw, "rollout state")
        if raw is None:
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
        self._throttle.now(self._read)
        return new


class RedisRuleStore(RuleStore):
    """The rule set in Redis, shared by every host.

    :param url: ``redis://host:port/db``.
    :param initial: the rules in force until Redis first answers (a rule
        set, a store or a rule file path) -- so a worker can start, and
        serve, while Redis is down.
    :param key: the key holding the rule set (JSON, as
        :meth:`~graywsgi.rules.model.RuleSet.to_dict`).
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
        self._throttle = Throttle(check_interval, clock)
        self._connection = _Connection(url, timeout)
        self.key = key
        self.check_interval = self._throttle.interval
        self._rules = as_store(initial).current()
        self._raw: bytes | None = None

    def current(self) -> CompiledRules:
        self._throttle.maybe(self._read)
        return self._rules

    def _read(self) -> None:
        raw = self._connection.changed(self.key, self._raw, "rules")
        if raw is None:
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
        self._throttle.now(self._read)
        return compiled


class RedisFleetWindow(SlidingWindow):
    """A sliding window whose totals cover every worker on every host.

    Each worker counts locally, as :class:`~graywsgi.core.window.SlidingWindow`
    does, and at most once per ``sync_interval`` (default 1 s), on the
    request path, sends what it counted since the last sync to Redis and
    reads back the fleet's totals -- one pipelined round trip: per-second
    hashes ``<prefix>:<route>:<unix second>`` with fields ``r``, ``e``,
    ``s`` (requests, errors, slow), expiring after the window. Between
    syncs, :meth:`totals` is the last fleet totals plus what this worker
    counted since. So a breaker's trip rule sees the whole fleet's traffic,
    at most ``sync_interval`` late.

    Buckets are wall-clock seconds, so workers agree on them; keep the
    hosts' clocks in sync (NTP). When Redis cannot be reached, the window
    falls back to this worker's own counts (logged once), and unsent counts
    older than the window are dropped.

    :meth:`reset` (the breaker closing) makes the window ignore every count
    from before that second, here and in Redis.

    :param url: ``redis://host:port/db``.
    :param route: the route counted.
    :param buckets: window length in seconds (default 60).
    :param key_prefix: Redis key prefix.
    :param sync_interval: seconds between round trips to Redis.
    :param timeout: socket timeout for them.
    """

    def __init__(
        self,
        url: str,
        route: str,
        *,
        buckets: int = 60,
        key_prefix: str = "graywsgi:window",
        sync_interval: float = 1.0,
        timeout: float = 0.05,
        clock: t.Callable[[], float] = time.monotonic,
        wall_clock: t.Callable[[], float] = time.time,
    ) -> None:
        super().__init__(buckets, 1.0, clock)
        self._throttle = Throttle(sync_interval, clock)
        self._connection = _Connection(url, timeout)
        self.route = route
        self.key_prefix = key_prefix
        self.sync_interval = self._throttle.interval
        self._wall = wall_clock
        self._pending: dict[int, list[int]] = {}
        self._pending_lock = threading.Lock()
        self._fleet: WindowTotals | None = None
        self._since = 0  # wall second of the last reset: older counts are ignored

    def _count(self, error: bool, slow: bool) -> WindowTotals:
        super()._count(error, slow)
        second = int(self._wall())
        with self._pending_lock:
            counts = self._pending.get(second)
            if counts is None:
                counts = self._pending[second] = [0, 0, 0]
            counts[0] += 1
            counts[1] += error
            counts[2] += slow
        self._throttle.maybe(self._sync)
        return self.totals()

    def totals(self) -> WindowTotals:
        fleet = self._fleet
        if fleet is None:
            return super().totals()
        with self._pending_lock:
            unsent = [0, 0, 0]
            for counts in self._pending.values():
                unsent[0] += counts[0]
                unsent[1] += counts[1]
                unsent[2] += counts[2]
        return WindowTotals(fleet.requests + unsent[0], fleet.errors + unsent[1], fleet.slow + unsent[2])

    def reset(self) -> None:
        super().reset()
        with self._pending_lock:
            self._pending.clear()
        self._since = int(self._wall()) + 1
        self._fleet = WindowTotals(0, 0, 0)

    def sync(self) -> None:
        """Send this worker's counts and read the fleet's, now (one round trip)."""
        self._throttle.now(self._sync)

    def _sync(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        now = int(self._wall())
        first = max(now - self.buckets + 1, self._since)
        connection = self._connection
        try:
            pipe = connection.client().pipeline(transaction=False)
            for second, (requests, errors, slow) in pending.items():
                key = f"{self.key_prefix}:{self.route}:{second}"
                pipe.hincrby(key, "r", requests)
                if errors:
                    pipe.hincrby(key, "e", errors)
                if slow:
                    pipe.hincrby(key, "s", slow)
                pipe.expire(key, self.buckets + 5)
            seconds = range(first, now + 1)
            for second in seconds:
                pipe.hmget(f"{self.key_prefix}:{self.route}:{second}", ["r", "e", "s"])
            replies = pipe.execute()
        except connection.errors as exc:
            connection.failed(f"window counts for {self.route} (using this worker's own)", exc)
            self._fleet = None
            with self._pending_lock:  # keep unsent counts, but none older than the window
                for second, counts in pending.items():
                    if second > now - self.buckets:
                        merged = self._pending.setdefault(second, [0, 0, 0])
                        for i in range(3):
                            merged[i] += counts[i]
            return
        connection.succeeded()
        totals = [0, 0, 0]
        for reply in replies[len(replies) - len(seconds):]:
            for i, value in enumerate(reply):
                if value is not None:
                    totals[i] += int(value)
        self._fleet = WindowTotals(totals[0], totals[1], totals[2])
