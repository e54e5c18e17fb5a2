"""graywsgi.state.rollout: a plan moved through its steps in the shared state -- pauses, gates, operators, the Router."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router, current
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.rules.files import parse_rules
from graywsgi.errors import GrayError
from graywsgi.layers.guard import Guard
from graywsgi.core.hashing import fnv1a_32
from graywsgi.rules.plan import GateFailed
from graywsgi.state.rollout import Rollout
from graywsgi.state.rollout_state import FileStateStore

from tests.conftest import BufferedClient
from tests.rules.test_plan import RULES_YAML

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Rollout, Guard, Clocks, Path]:
    clocks = Clocks()
    rules = parse_rules(RULES_YAML, filename="rules.yaml")
    state_path = tmp_path / "state.json"
    guard = Guard(policy=BreakerPolicy(min_requests=1000), state=FileStateStore(state_path, check_interval=0),
                  clock=lambda: clocks.mono)
    assert rules.ruleset.plan is not None
    rollout = Rollout(rules.ruleset.plan, guard.state, guard, wall_clock=lambda: clocks.wall)
    return rollout, guard, clocks, state_path


def feed(guard: Guard, route: str, requests: int, errors: int = 0, seconds: float = 0.01) -> None:
    if route == "stable":
        for i in range(requests):
            guard.baseline.record(error=i < errors, slow=False)
            guard.baseline_latency.record(seconds)
        return
    breaker = guard.breaker(route)
    for i in range(requests):
        breaker.record(breaker.admit(), error=i < errors, slow=False)
        guard._latency[route].record(seconds)


def test_progression_pauses_and_weights(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, path = setup
    assert rollout.weight() is None  # not started: configured weights
    rollout.start("alice")
    assert (rollout.plan_state().step, rollout.weight()) == (0, 0.0)
    rollout.tick()  # dark launch has no pause: waits for an operator
    assert rollout.plan_state().step == 0
    rollout.advance("alice")
    assert (rollout.plan_state().step, rollout.weight()) == (1, 1.0)
    clocks.advance(599)
    rollout.tick()
    assert rollout.plan_state().step == 1
    clocks.advance(1)
    rollout.tick()  # pause over, but the next step's gate needs traffic
    state = rollout.plan_state()
    assert state.step == 1 and state.refusal == "gate failed: canary has 0 requests in the window, 10 needed"
    feed(guard, "canary", 20, errors=1)
    feed(guard, "stable", 100, errors=5)
    clocks.advance(1)
    rollout.tick()
    assert (rollout.plan_state().step, rollout.weight()) == (2, 5.0)
    assert json.loads(path.read_text())["plan"]["step"] == 2  # every worker reads this


def test_error_gate_refusal_explains_itself(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, _ = setup
    rollout.start()
    rollout.advance(force=True)
    feed(guard, "canary", 1000, errors=41)
    feed(guard, "stable", 1000, errors=3)
    with pytest.raises(GateFailed) as excinfo:
        rollout.advance("bob")
    assert str(excinfo.value) == "gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %"
    assert rollout.plan_state().refusal == str(excinfo.value)


def test_latency_gate(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, _ = setup
    rollout.start()
    for _ in range(2):
        rollout.advance(force=True)
    feed(guard, "canary", 20, seconds=0.2)
    feed(guard, "stable", 20, seconds=0.1)
    with pytest.raises(GateFailed, match=r"canary latency 200.0 ms is 2.00x stable's 100.0 ms, limit 1.5x"):
        rollout.advance()
    rollout.advance(force=True)
    assert rollout.plan_state().step == 3


def test_requested_advance_is_done_by_a_serving_worker(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, _ = setup
    rollout.start()
    rollout.request_advance("carol")
    assert rollout.plan_state().step == 0
    rollout.tick()
    state = rollout.plan_state()
    assert state.step == 1 and state.actor == "carol" and state.advance_requested_at is None


def test_pause_resume_promote_rollback(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, _ = setup
    with pytest.raises(GrayError, match="cannot pause a plan that is not started"):
        rollout.pause()
    rollout.start()
    rollout.advance(force=True)
    rollout.pause()
    clocks.advance(3600)
    rollout.tick()
    assert rollout.plan_state().step == 1 and rollout.weight() == 1.0  # paused: stays
    rollout.resume()
    rollout.promote("dave")
    assert rollout.weight() == 100.0 and rollout.plan_state().status == "promoted"
    rollout.rollback("erin")
    assert rollout.plan_state().status == "aborted" and rollout.weight() is None
    assert guard.state.current().killed
    rollout.start()
    assert not guard.state.current().killed and rollout.plan_state().step == 0


def test_last_step_cannot_advance(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, _, _, _ = setup
    rollout.start()
    for _ in range(4):
        rollout.advance(force=True)
    with pytest.raises(GrayError, match="last step"):
        rollout.advance(force=True)


def show(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response(current.route)(environ, start_response)


def test_router_applies_the_plan_weight(tmp_path: Path) -> None:
    rules = parse_rules(RULES_YAML, filename="rules.yaml")
    guard = Guard(state=FileStateStore(tmp_path / "s.json", check_interval=0))
    router = Router(show, rules, guard=guard)
    client = BufferedClient(Extraction(router))
    canary_at_1 = next(f"u{i}" for i in range(1000) if fnv1a_32(f"u{i}") % 100 < 1)
    assert client.get("/", headers={"X-Gray-ID": canary_at_1}).text == "stable"  # configured weight 0
    rollout = router.rollout
    assert rollout is not None
    rollout.start()
    rollout.advance(force=True)  # first-slice: 1 %
    assert client.get("/", headers={"X-Gray-ID": canary_at_1}).text == "canary"
    status = router.status()
    assert status["plan"]["step_name"] == "first-slice" and status["plan"]["weight"] == 1.0


def test_gate_refuses_while_the_canary_breaker_is_open(setup: tuple[Rollout, Guard, Clocks, Path]) -> None:
    rollout, guard, clocks, _ = setup
    rollout.start()
    rollout.advance(force=True)
    guard.breaker("canary").trip("test")
    with pytest.raises(GateFailed, match="the canary breaker is open"):
        rollout.advance()
