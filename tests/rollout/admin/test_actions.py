"""Tests of graywsgi.rollout.admin.actions: roll back, resume, advance and the RolloutControl protocol."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest

from graywsgi.layers.router import Router
from graywsgi.rollout.admin.actions import RolloutControl
from graywsgi.rollout.admin.app import AdminApp
from graywsgi.rules.files import parse_rules
from graywsgi.state.rollout_state import FileStateStore, MemoryStateStore, RolloutState, StateStore

from tests.conftest import BufferedClient
from tests.rollout.admin.helpers import (
    AUTH,
    PROBLEM,
    RULES,
    TOKEN,
    FakeRollout,
    Setup,
    answer,
    audit_records,
    build,
)


# -- actions ------------------------------------------------------------------------


def test_rollback_and_resume_change_the_state_store(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    assert setup.traffic.get("/", headers={"X-Gray-ID": "user-0"}).text in ("stable", "canary")
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", headers={**AUTH, "X-Actor": "ada"})
    assert response.status_code == 200
    body = response.json
    assert body["action"] == "rollback" and body["outcome"] == "ok" and body["actor"] == "ada"
    assert body["changed"] is True
    assert body["kill_switch"]["killed"] is True
    assert body["kill_switch"]["reason"] == "rolled back by ada from the admin app"
    on_disk = RolloutState.from_json(Path(setup.state.path).read_bytes())
    assert on_disk.killed and on_disk.reason == "rolled back by ada from the admin app"
    # The router sees it: canary users are served by stable now.
    assert {setup.traffic.get("/", headers={"X-Gray-ID": f"user-{i}"}).text for i in range(50)} == {"stable"}

    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        again = setup.client.post("/_gray/rollback", headers=AUTH)
        resumed = setup.client.post("/_gray/resume", headers=AUTH)
    assert again.json["changed"] is False
    assert resumed.status_code == 200 and resumed.json["kill_switch"]["killed"] is False
    assert not FileStateStore(setup.state.path).fetch().killed
    assert audit_records(caplog) == [
        ("rollback", "ok", "ada", "192.0.2.7"),
        ("rollback", "ok", "unknown", "192.0.2.7"),
        ("resume", "ok", "unknown", "192.0.2.7"),
    ]
    record = [r for r in caplog.records if r.name == "graywsgi.audit"][0]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "graywsgi admin rollback by ada from 192.0.2.7: ok"


def test_explicit_state_store(tmp_path: Path) -> None:
    other = MemoryStateStore()
    setup = build(tmp_path, state=other)
    setup.client.post("/_gray/rollback", headers=AUTH)
    assert other.current().killed
    assert not setup.state.fetch().killed


def test_no_state_store_refuses_rollback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    router = Router(answer("stable"), RULES)
    client = BufferedClient(AdminApp(router, token=TOKEN))
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = client.post("/rollback", headers=AUTH)
    assert response.status_code == 409
    assert response.mimetype == PROBLEM and "no state store" in response.json["detail"]
    assert response.json["outcome"] == "refused"
    assert [(a, o.split(":")[0]) for a, o, _, _ in audit_records(caplog)] == [("rollback", "refused")]
    status = client.get("/status", headers=AUTH).json
    assert status["kill_switch"] is None
    assert status["routes"]["canary"]["window"] is None
    page = client.get("/", headers=AUTH).text
    assert "Kill switch: not available" in page and 'id="rollback-button"' not in page


class BrokenStore(StateStore):
    def current(self) -> RolloutState:
        return RolloutState()

    def fetch(self) -> RolloutState:
        raise ConnectionError("redis is down")

    def _update(self, change: t.Callable[[RolloutState], RolloutState]) -> RolloutState:
        raise ConnectionError("redis is down")


def test_failing_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, state=BrokenStore())
    with caplog.at_level(logging.WARNING):
        response = setup.client.post("/_gray/rollback", headers=AUTH)
    assert response.status_code == 503
    assert "redis is down" in response.json["detail"]
    assert audit_records(caplog) == [("rollback", "error: ConnectionError: redis is down", "unknown", "192.0.2.7")]
    status = setup.client.get("/_gray/status", headers=AUTH).json
    assert status["kill_switch"]["killed"] is None
    assert "redis is down" in status["kill_switch"]["error"]
    assert "Kill switch: unknown" in setup.client.get("/_gray/", headers=AUTH).text


def test_fake_rollout_is_a_rollout_control() -> None:
    assert isinstance(FakeRollout(), RolloutControl)


def test_advance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rollout = FakeRollout()
    setup = build(tmp_path, rollout=rollout)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        ok = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "ada"})
        rollout.refuse = "gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %"
        refused = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "bob"})
    assert ok.status_code == 200 and ok.json["rollout"]["step"] == 2
    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    assert refused.json["detail"] == "gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %"
    assert rollout.actors == ["ada", "bob"]
    assert audit_records(caplog) == [
        ("advance", "ok", "ada", "192.0.2.7"),
        ("advance", "refused: gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %", "bob", "192.0.2.7"),
    ]
    assert setup.client.get("/_gray/status", headers=AUTH).json["rollout"]["step"] == 2


class CrashingRollout(FakeRollout):
    def advance(self, actor: str) -> dict[str, t.Any]:
        raise ZeroDivisionError("division by zero")


def test_advance_error_is_503(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, rollout=CrashingRollout())
    with caplog.at_level(logging.WARNING):
        response = setup.client.post("/_gray/advance", headers=AUTH)
    assert response.status_code == 503
    assert audit_records(caplog)[0][1] == "error: ZeroDivisionError: division by zero"


def test_advance_without_a_plan(setup: Setup) -> None:
    response = setup.client.post("/_gray/advance", headers=AUTH)
    assert response.status_code == 409 and "no rollout plan" in response.json["detail"]
    assert setup.client.get("/_gray/status", headers=AUTH).json["rollout"] is None


PLAN_YAML = """
id: plan-1
clusters: {stable: {}, canary: {}}
rules:
  - name: checkout
    split: [{cluster: canary, weight: 0}]
plan:
  rule: checkout
  cluster: canary
  steps:
    - {name: dark-launch, weight: 0}
    - {name: first-slice, weight: 1}
    - {name: five, weight: 5, gate: {min_requests: 10, max_error_rate_diff: 0.01}}
"""


def test_advance_the_router_plan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, rules=parse_rules(PLAN_YAML, filename="rules.yaml").ruleset)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        not_started = setup.client.post("/_gray/advance", headers=AUTH)
        assert setup.router.rollout is not None
        setup.router.rollout.start("ops")
        advanced = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "ada"})
        gated = setup.client.post("/_gray/advance", headers=AUTH)
    assert not_started.status_code == 409 and "not started" in not_started.json["detail"]
    assert advanced.status_code == 200
    assert advanced.json["rollout"]["step"] == 1 and advanced.json["rollout"]["step_name"] == "first-slice"
    assert gated.status_code == 409
    assert gated.json["detail"].startswith("gate failed: canary has 0 requests in the window, 10 needed")
    assert [o.split(":")[0] for _, o, _, _ in audit_records(caplog)] == ["refused", "ok", "refused"]
    status = setup.client.get("/_gray/status", headers=AUTH).json
    assert status["rollout"]["step_name"] == "first-slice"
    assert status["rules"][0]["shares"] == {"canary": 1.0, "stable": 99.0}  # the plan's weight, not the rule's 0
