"""graywsgi.rollout.checklist.state_kinds: gray_switch_closed and store_reachable with file and Redis stores."""

from __future__ import annotations

import os
import re
import typing as t
import uuid
from pathlib import Path

import pytest

from graywsgi.rollout.checklist.results import CheckStatus
from graywsgi.rollout.checklist.running import run_checklist
from graywsgi.state.rollout_state import FileStateStore
from tests.rollout.checklist.helpers import free_port, load, run_one

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_location() -> t.Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis on 127.0.0.1:6379: {exc}")
        pytest.skip(f"no Redis on 127.0.0.1:6379 ({exc}); CI is unset")
    key = f"graywsgi-test:{uuid.uuid4().hex}"
    try:
        yield f"{REDIS_URL}#{key}"
    finally:
        client.delete(key)
        client.close()


@pytest.fixture
def redis_state() -> t.Iterator[str]:
    yield from redis_location()


def test_gray_switch_closed_follows_the_kill_switch_in_a_file_store(tmp_path: Path) -> None:
    location = tmp_path / "state.json"
    check = "    kind: gray_switch_closed\n    timeout: 5\n    state: state.json\n"  # relative to the checklist
    store = FileStateStore(location)
    store.update(lambda s: s)  # an existing, clear state
    open_result = run_one(tmp_path, check)
    assert open_result.status is CheckStatus.FAILED
    assert open_result.reason == "kill switch clear (revision 1): canary routes still get their shares"
    store.set_route("canary", True, "error rate 41 %")
    still_open = run_one(tmp_path, check)
    assert still_open.status is CheckStatus.FAILED
    assert "open breakers (canary) do not count" in still_open.reason
    store.rollback("bad deploy")
    closed = run_one(tmp_path, check)
    assert closed.status is CheckStatus.PASSED
    assert re.fullmatch(
        r"kill switch set since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: bad deploy \(revision 3\): "
        r"every canary share is 0",
        closed.reason,
    ), closed.reason
    store.resume()
    assert run_one(tmp_path, check).status is CheckStatus.FAILED


def test_gray_switch_closed_with_an_unreadable_state_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{broken")
    result = run_one(tmp_path, "    kind: gray_switch_closed\n    timeout: 5\n    state: state.json\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason.startswith(f"cannot read {tmp_path / 'state.json'}: ")


def test_store_reachable_with_a_file_store(tmp_path: Path) -> None:
    check = "    kind: store_reachable\n    timeout: 5\n    state: state.json\n"
    fresh = run_one(tmp_path, check)
    assert fresh.status is CheckStatus.PASSED
    assert fresh.reason.endswith("(revision 0); no state written yet (workers read the empty state)")
    FileStateStore(tmp_path / "state.json").rollback("x")
    written = run_one(tmp_path, check)
    assert written.status is CheckStatus.PASSED and "(revision 1)" in written.reason
    assert "no state written" not in written.reason


@pytest.mark.parametrize(
    "setup, state, reason",
    [
        pytest.param(None, "missing-dir/state.json", "does not exist", id="directory missing"),
        pytest.param("{broken", "state.json", "not a rollout state", id="corrupt file"),
    ],
)
def test_store_reachable_fails(tmp_path: Path, setup: str | None, state: str, reason: str) -> None:
    if setup is not None:
        (tmp_path / state).write_text(setup)
    result = run_one(tmp_path, f"    kind: store_reachable\n    timeout: 5\n    state: {state}\n")
    assert result.status is CheckStatus.FAILED
    assert reason in result.reason


def test_gray_switch_closed_and_store_reachable_with_redis(tmp_path: Path, redis_state: str) -> None:
    from graywsgi.state.redis_store import RedisStateStore

    url, _, key = redis_state.partition("#")
    checks = (
        f"checks:\n  - {{name: reachable, kind: store_reachable, timeout: 5, state: '{redis_state}'}}\n"
        f"  - {{name: closed, kind: gray_switch_closed, timeout: 5, state: '{redis_state}', depends_on: [reachable]}}\n"
    )
    checklist = load(tmp_path, checks)
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED, CheckStatus.FAILED]
    RedisStateStore(url, key=key, check_interval=0, timeout=2).rollback("redis rollback")
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED, CheckStatus.PASSED]
    assert "redis rollback" in report.results[1].reason


def test_store_reachable_fails_for_redis_nobody_listens_on(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    location = f"redis://127.0.0.1:{free_port()}/0#k"
    result = run_one(tmp_path, f"    kind: store_reachable\n    timeout: 2\n    state: '{location}'\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason.startswith(f"cannot read {location}: ConnectionError")
