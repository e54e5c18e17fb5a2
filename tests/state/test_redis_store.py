"""Redis stores against the real Redis on 127.0.0.1:6379.

Skipped, with the reason, only when no Redis answers and CI is unset; in CI
a missing Redis is a failure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import typing as t
import uuid

import pytest

from graywsgi.core.breaker import BreakerPolicy, BreakerState
from graywsgi.errors import ConfigurationError
from graywsgi.layers.guard import Guard
from graywsgi.state.redis_store import RedisRuleStore, RedisStateStore
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_client() -> t.Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis on 127.0.0.1:6379: {exc}")
        pytest.skip(f"no Redis on 127.0.0.1:6379 ({exc}); CI is unset")
    return client


@pytest.fixture
def key() -> t.Iterator[str]:
    client = redis_client()
    name = f"graywsgi-test:{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        client.delete(name)
        client.close()


RULES_V1 = RuleSet(id="r1", clusters={"stable": Cluster(), "canary": Cluster()})
RULES_V2 = RuleSet(
    id="r2",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 100),)),),
)


def test_rollback_reaches_another_host(key: str) -> None:
    host_a = RedisStateStore(REDIS_URL, key=key, check_interval=0)
    host_b = RedisStateStore(REDIS_URL, key=key, check_interval=0)
    assert not host_b.current().killed
    host_a.rollback("bad deploy")
    state = host_b.current()
    assert state.killed and state.reason == "bad deploy" and state.revision == 1
    host_b.resume()
    assert not host_a.current().killed and host_a.current().revision == 2


def test_concurrent_writers_lose_no_update(key: str) -> None:
    import threading

    stores = [RedisStateStore(REDIS_URL, key=key, check_interval=0) for _ in range(4)]

    def flip(store: RedisStateStore, n: int) -> None:
        for i in range(10):
            store.set_route(f"route-{n}", i % 2 == 0, f"write {i}")

    threads = [threading.Thread(target=flip, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    final = stores[0].current()
    assert final.revision == 40  # every read-modify-write counted once
    assert set(final.routes) == {"route-0", "route-1", "route-2", "route-3"}


def test_breaker_trip_shared_between_hosts(key: str) -> None:
    clock = [0.0]
    policy = BreakerPolicy(min_requests=2, error_rate=0.4)
    a = Guard(policy=policy, state=RedisStateStore(REDIS_URL, key=key, check_interval=0), clock=lambda: clock[0])
    b = Guard(policy=policy, state=RedisStateStore(REDIS_URL, key=key, check_interval=0), clock=lambda: clock[0])
    breaker = a.breaker("canary")
    for _ in range(2):
        breaker.record(breaker.admit(), error=True, slow=False)
    assert breaker.state is BreakerState.OPEN
    admission, why = b.admit("canary")
    assert why == "breaker open" and b.breaker("canary").state is BreakerState.OPEN


def test_rule_store_publish_and_follow(key: str) -> None:
    writer = RedisRuleStore(REDIS_URL, initial=RULES_V1, key=key, check_interval=0)
    reader = RedisRuleStore(REDIS_URL, initial=RULES_V1, key=key, check_interval=0)
    assert reader.current().version_id == "r1"
    writer.publish(RULES_V2)
    assert reader.current().version_id == "r2"
    with pytest.raises(ConfigurationError):
        writer.publish(RuleSet(clusters={"stable": Cluster()}, default_cluster="nope"))
    assert reader.current().version_id == "r2"


def test_invalid_rules_in_redis_keep_last_good(key: str, caplog: pytest.LogCaptureFixture) -> None:
    client = redis_client()
    store = RedisRuleStore(REDIS_URL, initial=RULES_V1, key=key, check_interval=0)
    client.set(key, json.dumps({"clusters": {"stable": {}}, "rules": [{"name": "x", "mode": "bogus"}]}))
    with caplog.at_level(logging.ERROR, logger="graywsgi.redis"):
        for _ in range(3):
            assert store.current().version_id == "r1"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "$.rules[0].mode" in errors[0].getMessage()
    client.close()


def test_unreachable_redis_keeps_last_state_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    # A listener that never answers: connects succeed, reads time out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        store = RedisStateStore(url, check_interval=0, timeout=0.05)
        with caplog.at_level(logging.ERROR, logger="graywsgi.redis"):
            started = time.monotonic()
            for _ in range(3):
                assert store.current().killed is False
            elapsed = time.monotonic() - started
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage()
    assert elapsed < 3  # three reads, each bounded by the 50 ms timeout (generous for a loaded machine)


def test_stores_open_no_connection_until_used() -> None:
    # In a fresh process, so sockets other tests leave behind do not count.
    code = (
        "import os\n"
        "from graywsgi.state.redis_store import RedisFleetWindow, RedisRuleStore, RedisStateStore\n"
        "from graywsgi.rules.model import Cluster, RuleSet\n"
        "def sockets():\n"
        "    return {fd for fd in os.listdir('/proc/self/fd')\n"
        "            if os.path.exists(f'/proc/self/fd/{fd}') and os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')}\n"
        "before = sockets()\n"
        f"RedisStateStore({REDIS_URL!r})\n"
        f"RedisRuleStore({REDIS_URL!r}, initial=RuleSet(clusters={{'stable': Cluster()}}))\n"
        f"RedisFleetWindow({REDIS_URL!r}, 'canary')\n"
        "print(len(sockets() - before))\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


@pytest.mark.parametrize(
    "url, kwargs, fragment",
    [
        pytest.param("http://127.0.0.1:6379", {}, "not a Redis URL", id="wrong scheme"),
        pytest.param(REDIS_URL, {"timeout": 0}, "timeout", id="zero timeout"),
        pytest.param(REDIS_URL, {"check_interval": -1}, "check_interval", id="negative interval"),
    ],
)
def test_bad_options(url: str, kwargs: dict[str, t.Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        RedisStateStore(url, **kwargs)


class Clocks:
    """A shared fake monotonic and wall clock for simulated workers."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def fleet_window(route: str, clocks: Clocks, **kwargs: t.Any) -> t.Any:
    from graywsgi.state.redis_store import RedisFleetWindow

    return RedisFleetWindow(REDIS_URL, route, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall, **kwargs)


@pytest.fixture
def route() -> t.Iterator[str]:
    client = redis_client()
    name = f"test-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        for key in client.scan_iter(f"graywsgi:window:{name}:*"):
            client.delete(key)
        client.close()


def test_fleet_window_sums_every_worker(route: str) -> None:
    clocks = Clocks()
    a = fleet_window(route, clocks, sync_interval=1.0)
    b = fleet_window(route, clocks, sync_interval=1.0)
    for _ in range(10):
        a.record(error=True, slow=False)
    for _ in range(30):
        b.record(error=False, slow=True)
    clocks.advance(1.0)
    a.sync()
    b.sync()
    a.sync()  # a sees b's counts once b has sent them
    assert a.totals() == (40, 10, 30)
    assert b.totals() == (40, 10, 30)
    clocks.advance(61)
    a.sync()
    assert a.totals() == (0, 0, 0)  # out of the window


def test_breaker_trips_on_fleet_counts(route: str) -> None:
    clocks = Clocks()
    policy = BreakerPolicy(min_requests=10, error_rate=0.35)
    window_a, window_b = fleet_window(route, clocks, sync_interval=0), fleet_window(route, clocks, sync_interval=0)
    from graywsgi.core.breaker import RouteBreaker

    a = RouteBreaker(route, policy, window=window_a, clock=lambda: clocks.mono)
    b = RouteBreaker(route, policy, window=window_b, clock=lambda: clocks.mono)
    for _ in range(5):  # a alone: 5 errors, under the minimum volume
        a.record(a.admit(), error=True, slow=False)
    assert a.state is BreakerState.CLOSED
    for _ in range(5):  # b's 5 successes bring the fleet to 10 requests, 50 % errors
        b.record(b.admit(), error=False, slow=False)
    assert b.state is BreakerState.OPEN  # b trips on traffic it mostly did not see itself


def test_fleet_window_reset_ignores_older_counts(route: str) -> None:
    clocks = Clocks()
    window = fleet_window(route, clocks, sync_interval=0)
    for _ in range(5):
        window.record(error=True, slow=False)
    assert window.totals().errors == 5
    window.reset()
    clocks.advance(1.0)
    window.record(error=False, slow=False)
    assert window.totals() == (1, 0, 0)


def test_fleet_window_falls_back_to_local_counts_without_redis(caplog: pytest.LogCaptureFixture) -> None:
    from graywsgi.state.redis_store import RedisFleetWindow

    window = RedisFleetWindow("redis://127.0.0.1:1/0", "canary", sync_interval=0)
    with caplog.at_level(logging.ERROR, logger="graywsgi.redis"):
        for _ in range(3):
            window.record(error=True, slow=False)
    assert window.totals() == (3, 3, 0)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
