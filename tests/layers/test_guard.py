from __future__ import annotations

import json
import logging
import socket
import typing as t
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router, current
from graywsgi.core.breaker import BreakerListener, BreakerPolicy, BreakerState
from graywsgi.layers.guard import Guard, StatsdAlert
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import FileStateStore, MemoryStateStore
from graywsgi.core.window import WindowTotals

from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RULES = RuleSet(
    id="g1",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 100),)),),
)
POLICY = BreakerPolicy(min_requests=5, error_rate=0.5, cooldown=30, probes=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Canary:
    """A canary app whose behaviour the test switches."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("canary bug")
        if self.mode == "raise-in-body":
            start_response("200 OK", [])

            def body() -> t.Iterator[bytes]:
                yield b"partial"
                raise RuntimeError("canary bug mid-body")

            return body()
        status = 500 if self.mode == "500" else 200
        body = {"served_by": "canary", "route": current.route, "reason": current.route_reason}
        return Response(json.dumps(body), status=status)(
            environ, start_response
        )


def stable(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    body = {"served_by": "stable", "route": current.route, "reason": current.route_reason}
    assert current.route_reason == environ["graywsgi.decision"].reason
    return Response(json.dumps(body))(environ, start_response)


class Alerts(BreakerListener):
    def __init__(self) -> None:
        self.trips: list[tuple[str, str]] = []
        self.changes: list[tuple[str, str, str]] = []

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        self.trips.append((route, reason))

    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        self.changes.append((route, old.value, new.value))


def build(guard: Guard, canary: Canary) -> BufferedClient:
    return BufferedClient(Extraction(Router(stable, RULES, apps={"canary": canary}, guard=guard)))


def hit(client: BufferedClient, method: str = "GET", n: int = 1) -> list[tuple[int, str]]:
    out = []
    for _ in range(n):
        response = client.open("/", method=method, headers={"X-Gray-ID": "user-1"})
        served = json.loads(response.data)["served_by"] if response.data.startswith(b"{") else "?"
        out.append((response.status_code, served))
    return out


def test_failing_canary_trips_and_clients_see_only_stable_200s(caplog: pytest.LogCaptureFixture) -> None:
    clock, canary, alerts = Clock(), Canary(), Alerts()
    guard = Guard(policy=POLICY, listeners=[alerts], clock=clock)
    client = build(guard, canary)
    assert hit(client, n=3) == [(200, "canary")] * 3
    canary.mode = "500"
    with caplog.at_level(logging.WARNING):
        results = hit(client, n=20)
    assert results == [(200, "stable")] * 20  # failed GETs were served again by stable
    assert guard.breaker("canary").state is BreakerState.OPEN
    calls_at_trip = canary.calls
    assert calls_at_trip == 3 + 4  # 4 errors of 7 = 57 % > 50 % trips; no canary call after that
    assert alerts.trips == [("canary", alerts.trips[0][1])]  # once per trip
    assert "canary" in caplog.text


def test_reason_in_context() -> None:
    canary = Canary()
    clock = Clock()
    guard = Guard(policy=POLICY, clock=clock)
    client = build(guard, canary)
    assert json.loads(client.get("/", headers={"X-Gray-ID": "u"}).data)["reason"] == "weight"
    canary.mode = "500"
    assert json.loads(client.get("/", headers={"X-Gray-ID": "u"}).data)["reason"] == "retried on the default cluster"
    hit(client, n=5)
    assert json.loads(client.get("/", headers={"X-Gray-ID": "u"}).data)["reason"] == "rerouted: breaker open"


def test_non_idempotent_requests_are_not_retried() -> None:
    canary = Canary()
    canary.mode = "500"
    client = build(Guard(policy=POLICY, clock=Clock()), canary)
    assert hit(client, "POST", n=2) == [(500, "canary")] * 2


def test_exceptions_count_as_errors_and_are_retried_before_headers() -> None:
    canary = Canary()
    canary.mode = "raise"
    guard = Guard(policy=POLICY, clock=Clock())
    client = build(guard, canary)
    assert hit(client, n=5) == [(200, "stable")] * 5
    assert guard.breaker("canary").state is BreakerState.OPEN


def test_exception_mid_body_counts_as_error() -> None:
    canary = Canary()
    canary.mode = "raise-in-body"
    guard = Guard(policy=POLICY, clock=Clock())
    client = build(guard, canary)
    for _ in range(5):
        with pytest.raises(RuntimeError):
            client.get("/", headers={"X-Gray-ID": "u"})
    assert guard.breaker("canary").state is BreakerState.OPEN


def test_half_open_probes_then_close() -> None:
    clock, canary = Clock(), Canary()
    guard = Guard(policy=POLICY, clock=clock)
    client = build(guard, canary)
    canary.mode = "500"
    hit(client, n=5)
    assert guard.breaker("canary").state is BreakerState.OPEN
    canary.mode = "ok"
    clock.now += 29
    assert hit(client, n=2) == [(200, "stable")] * 2
    clock.now += 1
    assert hit(client, n=2) == [(200, "canary")] * 2  # the two probes
    assert guard.breaker("canary").state is BreakerState.CLOSED
    assert hit(client) == [(200, "canary")]


def test_failed_probe_reopens() -> None:
    clock, canary, alerts = Clock(), Canary(), Alerts()
    guard = Guard(policy=POLICY, listeners=[alerts], clock=clock)
    client = build(guard, canary)
    canary.mode = "500"
    hit(client, n=5)
    clock.now += 30
    assert hit(client) == [(200, "stable")]  # the probe failed, retried on stable
    assert guard.breaker("canary").state is BreakerState.OPEN
    assert len(alerts.trips) == 2


def test_kill_switch_reroutes_and_resume_restores() -> None:
    state = MemoryStateStore()
    canary = Canary()
    client = build(Guard(policy=POLICY, state=state, clock=Clock()), canary)
    assert hit(client) == [(200, "canary")]
    state.rollback("bad deploy")
    response = client.get("/", headers={"X-Gray-ID": "u"})
    assert json.loads(response.data) == {"served_by": "stable", "route": "stable", "reason": "rerouted: rolled back"}
    state.resume()
    assert hit(client) == [(200, "canary")]


def test_refuse_when_open_answers_503() -> None:
    canary = Canary()
    canary.mode = "500"
    clock = Clock()
    client = build(Guard(policy=POLICY, refuse_when_open=True, retry_on_stable=False, clock=clock), canary)
    hit(client, n=5)
    clock.now += 10
    response = client.get("/", headers={"X-Gray-ID": "u"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "20"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "breaker open" in json.loads(response.data)["detail"]


def test_slow_calls_trip_when_configured() -> None:
    clock, canary = Clock(), Canary()
    policy = BreakerPolicy(min_requests=3, slow_call_seconds=0.5, slow_rate=0.5)
    guard = Guard(policy=policy, clock=clock)

    def slow_canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        clock.now += 1.0  # the call "takes" a second
        return canary(environ, start_response)

    client = BufferedClient(Extraction(Router(stable, RULES, apps={"canary": slow_canary}, guard=guard)))
    hit(client, n=3)
    assert guard.breaker("canary").state is BreakerState.OPEN


def test_trip_is_shared_through_a_state_file(tmp_path: Path) -> None:
    """Two workers on one host: one trips, the other follows; one alert."""
    path = tmp_path / "state.json"
    clock = Clock()
    alerts_a, alerts_b = Alerts(), Alerts()
    canary = Canary()
    a = build(Guard(policy=POLICY, state=FileStateStore(path, check_interval=0), listeners=[alerts_a], clock=clock),
              canary)
    guard_b = Guard(policy=POLICY, state=FileStateStore(path, check_interval=0), listeners=[alerts_b], clock=clock)
    b = build(guard_b, canary)
    assert hit(b) == [(200, "canary")]
    canary.mode = "500"
    hit(a, n=5)
    canary.mode = "ok"
    assert hit(b) == [(200, "stable")]  # b adopted a's trip
    assert guard_b.breaker("canary").state is BreakerState.OPEN
    assert len(alerts_a.trips) == 1 and alerts_b.trips == []
    assert ("canary", "closed", "open") in alerts_b.changes
    state = json.loads(path.read_text())
    assert state["routes"]["canary"]["open"] is True


def test_kill_switch_through_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    workers = [build(Guard(policy=POLICY, state=FileStateStore(path, check_interval=0), clock=Clock()), Canary())
               for _ in range(3)]
    FileStateStore(path).rollback("operator")
    assert [hit(w)[0][1] for w in workers] == ["stable"] * 3
    FileStateStore(path).resume()
    assert [hit(w)[0][1] for w in workers] == ["canary"] * 3


def test_broken_state_file_keeps_last_state_and_logs_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    store = FileStateStore(path, check_interval=0)
    store.rollback("x")
    path.write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="graywsgi.state"):
        for _ in range(5):
            assert store.current().killed
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_statsd_alert_sends_one_datagram_per_trip() -> None:
    import statsd

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        client = statsd.StatsClient("127.0.0.1", port)
        canary = Canary()
        canary.mode = "500"
        guard = Guard(policy=POLICY, listeners=[StatsdAlert(client)], clock=Clock())
        hit(build(guard, canary), n=8)
        data, _ = receiver.recvfrom(1024)
        assert data == b"graywsgi.breaker.trip.canary:1|c"
        receiver.settimeout(0.2)
        with pytest.raises(socket.timeout):
            receiver.recvfrom(1024)
        client.close()


def test_status_reports_breakers_and_kill_switch() -> None:
    canary = Canary()
    guard = Guard(policy=POLICY, clock=Clock())
    router = Router(stable, RULES, apps={"canary": canary}, guard=guard)
    client = BufferedClient(Extraction(router))
    hit(client, n=2)
    status = router.status()
    assert status["rules_version"] == "g1" and status["killed"] is False
    assert status["breakers"]["canary"]["state"] == "closed"
    json.dumps(status)


def test_kill_switch_changes_reach_listeners_once_per_worker() -> None:
    events: list[tuple[str, str]] = []

    class Recorder(BreakerListener):
        def on_rollback(self, reason: str) -> None:
            events.append(("rollback", reason))

        def on_resume(self, reason: str) -> None:
            events.append(("resume", reason))

    state = MemoryStateStore()
    client = build(Guard(policy=POLICY, state=state, listeners=[Recorder()], clock=Clock()), Canary())
    hit(client, n=2)
    state.rollback("bad deploy")
    hit(client, n=3)
    state.resume("fixed")
    hit(client, n=3)
    assert events == [("rollback", "bad deploy"), ("resume", "fixed")]
