"""Rollback and breaker under real gunicorn with 4 workers, file and Redis state."""

from __future__ import annotations

import json
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from graywsgi.state.rollout_state import FileStateStore, StateStore

from tests.gunicorn_helpers import Gunicorn


def state_backends() -> list[t.Any]:
    return [pytest.param("file", id="file store"), pytest.param("redis", id="redis store")]


@pytest.fixture
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[tuple[str, StateStore]]:
    if request.param == "file":
        path = str(tmp_path / "state.json")
        yield path, FileStateStore(path, check_interval=0)
        return
    from graywsgi.state.redis_store import RedisStateStore

    from tests.state.test_redis_store import REDIS_URL, redis_client

    client = redis_client()
    key = f"graywsgi-test:{uuid.uuid4().hex}"
    try:
        yield f"{REDIS_URL}#{key}", RedisStateStore(REDIS_URL, key=key, check_interval=0)
    finally:
        client.delete(key)
        client.close()


class Traffic:
    """Client threads sending requests until stopped, recording each answer."""

    def __init__(self, server: Gunicorn, threads: int = 8) -> None:
        self.server = server
        self.records: list[tuple[float, int, int, str]] = []  # (sent at, status, pid, served_by)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            status, body = self.server.get("/", {"X-Gray-ID": "user-1"})
            with self.lock:
                self.records.append((sent, status, int(body.get("pid", 0)), str(body.get("served_by"))))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def since(self, moment: float) -> list[tuple[float, int, int, str]]:
        with self.lock:
            return [r for r in self.records if r[0] >= moment]


@pytest.mark.parametrize("state_location", state_backends(), indirect=True)
def test_manual_rollback_reaches_every_worker_within_100_ms(
    tmp_path: Path, state_location: tuple[str, StateStore], record_property: t.Callable[[str, object], None]
) -> None:
    where, store = state_location
    env = {"GRAYWSGI_TEST_STATE": where, "GRAYWSGI_TEST_FAIL_FLAG": str(tmp_path / "fail")}
    server = Gunicorn("tests.apps.guarded_app:application", workers=4, env=env)
    try:
        with Traffic(server) as traffic:
            deadline = time.monotonic() + 30
            while len({pid for _, _, pid, _ in traffic.since(0)}) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            before = traffic.since(0)
            assert {served for *_, served in before} == {"canary"}
            workers = {pid for _, _, pid, _ in before}
            assert len(workers) == 4
            # Propagation counts from the moment the rollback is written (the
            # store returns once it is): the file store fsyncs before its
            # rename, which a loaded machine can stretch past 50 ms, and
            # requests sent while it writes may still see the old state.
            writing = time.monotonic()
            store.rollback("e2e test")
            rolled_back = time.monotonic()
            record_property("rollback_write_ms", round((rolled_back - writing) * 1000, 1))
            time.sleep(1.0)
        assert rolled_back - writing < 1.0, "writing the rollback took over a second"
        after = traffic.since(rolled_back)
        # the first request each worker answered from stable, after the rollback
        first_stable: dict[int, float] = {}
        for sent, status, pid, served in sorted(after):
            assert status == 200
            if served == "stable":
                first_stable.setdefault(pid, sent - rolled_back)
        late_canary = [r for r in after if r[3] == "canary" and r[0] - rolled_back > 0.1]
        assert late_canary == [], "a request sent over 100 ms after the rollback still reached canary"
        assert set(first_stable) == workers
        worst = max(first_stable.values())
        record_property("rollback_propagation_ms", round(worst * 1000, 1))
        print(f"\nrollback propagation ({where.split('#')[0][:8]}): worst worker {worst * 1000:.1f} ms")
        # The guarantee is late_canary == [] above: nothing sent 100 ms after
        # the rollback reaches canary. ``worst`` also includes waiting for
        # the next request to reach each worker, which a loaded CI machine
        # can stretch; it is recorded, and bounded loosely.
        assert worst < 0.5
    finally:
        server.stop()


@pytest.mark.parametrize("state_location", [pytest.param("file", id="file store")], indirect=True)
def test_failing_canary_is_cut_off_while_clients_see_only_200s(
    tmp_path: Path, state_location: tuple[str, StateStore]
) -> None:
    where, store = state_location
    flag = tmp_path / "fail"
    env = {"GRAYWSGI_TEST_STATE": where, "GRAYWSGI_TEST_FAIL_FLAG": str(flag)}
    server = Gunicorn("tests.apps.guarded_app:application", workers=4, env=env)
    try:
        with Traffic(server) as traffic:
            time.sleep(0.5)
            flag.touch()
            started_failing = time.monotonic()
            deadline = started_failing + 20
            while time.monotonic() < deadline:
                state = store.current()
                if "canary" in state.routes and state.routes["canary"].open:
                    break
                time.sleep(0.05)
            tripped = time.monotonic()
            time.sleep(1.0)
        records = traffic.since(0)
        assert records and {status for _, status, _, _ in records} == {200}
        state = json.loads(Path(where).read_text())
        assert state["routes"]["canary"]["open"] is True
        after = [r for r in records if r[0] > tripped + 0.1]
        assert after and {served for *_, served in after} == {"stable"}
        print(f"\ncanary cut off {tripped - started_failing:.2f} s after it started failing; "
              f"{len(records)} requests, all 200")
    finally:
        server.stop()
