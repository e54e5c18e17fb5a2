"""Tests of graywsgi.rollout.admin.status: the JSON status document and the error-rate history."""

from __future__ import annotations

from pathlib import Path

from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.rollout.admin.app import AdminApp
from graywsgi.rollout.admin.status import HISTORY_SIZE
from graywsgi.rules.model import Cluster, RuleSet

from tests.rollout.admin.helpers import AUTH, RULES, TOKEN, Setup, answer, build, canary_users


# -- the status document ------------------------------------------------------------


def test_status_shape(setup: Setup) -> None:
    status = setup.client.get("/_gray/status", headers=AUTH)
    assert status.mimetype == "application/json"
    body = status.json
    assert set(body) == {"generated_at", "rules_version", "default_cluster", "clusters", "no_match",
                         "kill_switch", "rollout", "protocol_evolution", "trip_error_rate", "routes", "rules"}
    assert body["rules_version"] == "r7" and body["default_cluster"] == "stable"
    assert body["clusters"] == ["canary", "stable"]
    assert body["kill_switch"] == {"killed": False, "reason": "", "since": None, "revision": 0}
    assert body["trip_error_rate"] == 0.5
    assert list(body["routes"]) == ["stable", "canary"]
    assert body["routes"]["canary"] == {
        "default": False, "breaker": None, "shared": None, "taking_traffic": True, "why_not": "",
        "window": {"requests": 0, "errors": 0, "slow": 0, "error_rate": 0.0, "slow_rate": 0.0},
        "error_rate_history": [[setup.clock.now, None]],
    }
    assert body["rules"] == [
        {"name": "checkout", "mode": "hash", "factor": 0.5,
         "shares": {"canary": 10.0, "stable": 90.0}, "in_force": {"canary": 10.0, "stable": 90.0}},
        {"name": "everything", "mode": "hash", "factor": 1.0,
         "shares": {"canary": 10.0, "stable": 90.0}, "in_force": {"canary": 10.0, "stable": 90.0}},
    ]


def test_status_windows_breakers_and_shares_in_force(setup: Setup) -> None:
    users = canary_users(6)
    for user in users:
        assert setup.traffic.get("/", headers={"X-Gray-ID": user}).text == "canary"
    for i, user in enumerate(canary_users(4, canary=False)):
        setup.traffic.post("/", headers={"X-Gray-ID": user, "X-Fail": "1" if i == 0 else ""})
    body = setup.admin.status()
    canary = body["routes"]["canary"]
    assert canary["breaker"]["state"] == "closed"
    assert canary["window"]["requests"] == 6 and canary["window"]["error_rate"] == 0.0
    assert "mean_latency_seconds" in canary["window"]
    stable = body["routes"]["stable"]
    assert stable["breaker"] is None and stable["default"] is True
    assert stable["window"]["requests"] == 4 and stable["window"]["error_rate"] == 0.25

    for user in canary_users(20):  # POSTs are not retried: canary failures trip the breaker
        setup.traffic.post("/", headers={"X-Gray-ID": user, "X-Fail": "1"})
    body = setup.admin.status()
    canary = body["routes"]["canary"]
    assert canary["breaker"]["state"] == "open"
    assert canary["shared"]["open"] is True
    assert canary["taking_traffic"] is False and canary["why_not"] == "breaker open"
    assert body["rules"][1]["in_force"] == {"canary": 0.0, "stable": 100.0}
    assert body["rules"][1]["shares"] == {"canary": 10.0, "stable": 90.0}


def test_status_after_rollback(setup: Setup) -> None:
    setup.client.post("/_gray/rollback", headers=AUTH)
    body = setup.client.get("/_gray/status", headers=AUTH).json
    assert body["kill_switch"]["killed"] is True and body["kill_switch"]["revision"] == 1
    assert body["routes"]["canary"]["why_not"] == "kill switch set"
    assert [rule["in_force"] for rule in body["rules"]] == [{"canary": 0.0, "stable": 100.0}] * 2


def test_history_is_sampled_and_bounded(tmp_path: Path) -> None:
    setup = build(tmp_path, history=3)
    for _ in range(2):
        setup.admin.status()
    assert len(setup.admin.status()["routes"]["canary"]["error_rate_history"]) == 1  # same second: replaced
    for _ in range(5):
        setup.clock.now += 1
        history = setup.admin.status()["routes"]["canary"]["error_rate_history"]
    assert [when for when, _ in history] == [setup.clock.now - 2, setup.clock.now - 1, setup.clock.now]
    assert HISTORY_SIZE == 60


def test_history_forgets_removed_routes(tmp_path: Path) -> None:
    from graywsgi.state.rule_store import MemoryStore

    store = MemoryStore(RULES)
    router = Router(answer("stable"), store, guard=Guard())
    admin = AdminApp(router, token=TOKEN)
    assert set(admin.status()["routes"]) == {"stable", "canary"}
    store.update(RuleSet(clusters={"stable": Cluster(), "blue": Cluster()}))
    assert set(admin.status()["routes"]) == {"stable", "blue"}
    assert set(admin._history.sample(0.0, {})) == set()
