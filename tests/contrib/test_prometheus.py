"""graywsgi.contrib.prometheus: in process, and under a real gunicorn with 4 workers in multiprocess mode."""

from __future__ import annotations

import concurrent.futures
import http.client
import importlib
import json
import logging
import os
import signal
import sys
import time
import typing as t
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.core.breaker import BreakerPolicy, BreakerState
from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.contrib import prometheus as contrib_prometheus
from graywsgi.contrib.prometheus import PrometheusListener, PrometheusMetrics
from graywsgi.layers.guard import Guard
from graywsgi.core.hashing import fnv1a_32
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import MemoryStateStore
from tests.gunicorn_helpers import ROOT, Gunicorn

from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CANARY_PERCENT = 30  # as in tests/prometheus_app.py (the gunicorn test checks each answer's route against it)
RULES = RuleSet(
    id="p1",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="split", split=(Backend("canary", CANARY_PERCENT),)),),
)
DURATION = "graywsgi_request_duration_seconds"


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response("ok")(environ, start_response)


def expected_route(gray_id: str) -> str:
    return "canary" if fnv1a_32(gray_id) % 100 < CANARY_PERCENT else "stable"


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name``: sorted label pairs -> value."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in registry.collect() for sample in family.samples if sample.name == name
    }


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


@pytest.fixture(autouse=True)
def not_multiprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


# -- in process -----------------------------------------------------------------


def test_canary_and_stable_requests_are_counted_with_exact_labels() -> None:
    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(Extraction(Router(hello, RULES)), registry=registry))
    ids = [f"user-{n}" for n in range(200)]
    for gray_id in ids:
        assert client.get("/", headers={"X-Gray-ID": gray_id}).status_code == 200
    client.post("/", headers={"X-Gray-ID": "user-0"})
    canary = sum(expected_route(i) == "canary" for i in ids)
    assert 0 < canary < len(ids)
    first = expected_route("user-0")
    counts = samples(registry, DURATION + "_count")
    assert counts == {
        labels(route="canary", group="none", status_class="2xx", method="GET"): canary,
        labels(route="stable", group="none", status_class="2xx", method="GET"): len(ids) - canary,
        labels(route=first, group="none", status_class="2xx", method="POST"): 1,
    }
    assert sum(samples(registry, DURATION + "_bucket").values()) > 0
    inf = {k: v for k, v in samples(registry, DURATION + "_bucket").items() if ("le", "+Inf") in k}
    assert sum(inf.values()) == len(ids) + 1
    decisions = samples(registry, "graywsgi_decisions_total")
    assert set(k for k in decisions) == {
        labels(route="canary", group="none", reason="weight", rule="split"),
        labels(route="stable", group="none", reason=decisions_reason(decisions, "stable"), rule="split"),
    }
    assert decisions[labels(route="canary", group="none", reason="weight", rule="split")] == canary + (first == "canary")
    assert sum(decisions.values()) == len(ids) + 1


def decisions_reason(decisions: dict[tuple[tuple[str, str], ...], float], route: str) -> str:
    (reason,) = {dict(k)["reason"] for k in decisions if dict(k)["route"] == route}
    return reason


def test_no_context_is_counted_as_none() -> None:
    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(hello, registry=registry))
    client.open("/", method="BREW")
    assert samples(registry, DURATION + "_count") == {
        labels(route="none", group="none", status_class="2xx", method="other"): 1,
    }
    assert samples(registry, "graywsgi_decisions_total") == {}


def test_an_app_that_raises_counts_5xx_and_the_exception_propagates() -> None:
    def broken(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise RuntimeError("boom")

    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(Extraction(Router(broken, RULES)), registry=registry))
    with pytest.raises(RuntimeError, match="boom"):
        client.get("/", headers={"X-Gray-ID": "user-1"})
    counts = samples(registry, DURATION + "_count")
    assert counts == {labels(route=expected_route("user-1"), group="none", status_class="5xx", method="GET"): 1}


def test_a_body_that_raises_counts_5xx() -> None:
    def half(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        raise RuntimeError("mid-body")

    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(half, registry=registry))
    with pytest.raises(RuntimeError, match="mid-body"):
        client.get("/")
    assert samples(registry, DURATION + "_count") == {
        labels(route="none", group="none", status_class="5xx", method="GET"): 1,
    }


def test_a_500_answer_counts_5xx_and_a_404_4xx() -> None:
    registry = CollectorRegistry()
    status = {"code": 500}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response("no", status=status["code"])(environ, start_response)

    client = BufferedClient(PrometheusMetrics(Extraction(Router(app, RULES)), registry=registry))
    route = expected_route("user-2")
    assert client.get("/", headers={"X-Gray-ID": "user-2"}).status_code == 500
    status["code"] = 404
    assert client.get("/", headers={"X-Gray-ID": "user-2"}).status_code == 404
    assert samples(registry, DURATION + "_count") == {
        labels(route=route, group="none", status_class="5xx", method="GET"): 1,
        labels(route=route, group="none", status_class="4xx", method="GET"): 1,
    }


def test_duration_runs_until_the_server_closes_the_response() -> None:
    def slow_body(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        yield b"a"
        time.sleep(0.06)
        yield b"b"

    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(slow_body, registry=registry, buckets=(0.05, 1.0)))
    assert client.get("/").data == b"ab"
    assert samples(registry, DURATION + "_sum")[labels(route="none", group="none", status_class="2xx", method="GET")] >= 0.06
    buckets = samples(registry, DURATION + "_bucket")
    assert buckets[labels(route="none", group="none", status_class="2xx", method="GET", le="0.05")] == 0


def test_the_metrics_path_answers_the_text_exposition_and_is_not_counted() -> None:
    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(Extraction(Router(hello, RULES)), registry=registry))
    client.get("/", headers={"X-Gray-ID": "user-3"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["graywsgi_request_duration_seconds"].type == "histogram"
    assert families["graywsgi_decisions"].type == "counter"
    (count,) = [s for s in families[DURATION].samples if s.name == DURATION + "_count"]
    assert count.value == 1  # the scrape itself is not a request of the app
    assert client.head("/metrics").data == b""
    assert client.post("/metrics").status_code == 200  # other methods reach the app


def test_no_path_leaves_metrics_to_the_app() -> None:
    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(hello, registry=registry, path=None))
    assert client.get("/metrics").data == b"ok"


def test_label_values_are_sanitised_and_bounded() -> None:
    routes = iter([f"r{n}" for n in range(10)] + ["a b\n{x=\"1\"}", "z" * 200])

    def inventive(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        environ[ENVIRON_KEY] = GrayContext(request_id="r", route=next(routes), group="g")
        return hello(environ, start_response)

    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(inventive, registry=registry, max_values=3))
    for _ in range(10):
        client.get("/")
    counts = {dict(k)["route"]: v for k, v in samples(registry, DURATION + "_count").items()}
    assert counts == {"r0": 1, "r1": 1, "r2": 1, "other": 7}
    reasons = {dict(k)["reason"] for k in samples(registry, "graywsgi_decisions_total")}
    assert reasons == {"split"}  # a context without a route reason: a CanarySplit decided

    registry = CollectorRegistry()
    client = BufferedClient(PrometheusMetrics(inventive, registry=registry))
    client.get("/")
    client.get("/")
    counts = {dict(k)["route"]: v for k, v in samples(registry, DURATION + "_count").items()}
    assert counts == {"a_b__x__1__": 1, "z" * 64: 1}


def test_a_recording_failure_never_fails_the_request(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(Extraction(Router(hello, RULES)), registry=registry)

    def broken(*args: object) -> t.NoReturn:
        raise ValueError("registry on fire")

    monkeypatch.setattr(metrics.duration, "labels", broken)
    client = BufferedClient(metrics)
    with caplog.at_level(logging.WARNING, logger="graywsgi.contrib.prometheus"):
        responses = [client.get("/", headers={"X-Gray-ID": f"user-{n}"}) for n in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.data for r in responses] == [b"ok"] * 3
    logged = [r for r in caplog.records if r.name == "graywsgi.contrib.prometheus"]
    assert len(logged) == 1  # at most once per error_interval
    assert "registry on fire" in caplog.text and "unaffected" in logged[0].getMessage()


def test_a_failing_exporter_answers_500_and_requests_go_on(caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(registry: object) -> bytes:
        raise OSError("disk gone")

    monkeypatch.setattr(contrib_prometheus.prometheus_client, "generate_latest", broken)
    client = BufferedClient(PrometheusMetrics(hello, registry=CollectorRegistry()))
    with caplog.at_level(logging.ERROR, logger="graywsgi.contrib.prometheus"):
        assert client.get("/metrics").status_code == 500
    assert "disk gone" in caplog.text
    assert client.get("/").status_code == 200


def test_listener_counts_a_real_breaker_trip_rollbacks_and_resumes() -> None:
    registry = CollectorRegistry()
    listener = PrometheusListener(registry=registry)
    state = MemoryStateStore()
    guard = Guard(policy=BreakerPolicy(min_requests=5, error_rate=0.5, cooldown=30, probes=2), state=state,
                  listeners=[listener], clock=lambda: 1000.0)
    failing = {"on": False}

    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response("canary", status=500 if failing["on"] else 200)(environ, start_response)

    rules = RuleSet(id="all", clusters={"stable": Cluster(), "canary": Cluster()},
                    rules=(Rule(name="all", split=(Backend("canary", 100),)),))
    app = PrometheusMetrics(Extraction(Router(hello, rules, apps={"canary": canary}, guard=guard)), registry=registry)
    client = BufferedClient(app)
    assert [client.get("/", headers={"X-Gray-ID": "u"}).data for _ in range(3)] == [b"canary"] * 3
    failing["on"] = True
    assert [client.get("/", headers={"X-Gray-ID": "u"}).status_code for _ in range(10)] == [200] * 10
    assert guard.breaker("canary").state is BreakerState.OPEN
    assert registry.get_sample_value("graywsgi_breaker_trips_total", {"route": "canary"}) == 1
    # the failed GETs were served again by stable: counted there, with the reason
    counts = samples(registry, DURATION + "_count")
    assert counts[labels(route="canary", group="none", status_class="2xx", method="GET")] == 3
    assert sum(v for k, v in counts.items() if dict(k)["route"] == "stable") == 10
    reasons = {dict(k)["reason"] for k in samples(registry, "graywsgi_decisions_total")}
    assert "weight" in reasons and len(reasons) >= 2

    assert registry.get_sample_value("graywsgi_rollbacks_total") == 0
    state.rollback("bad deploy")
    client.get("/", headers={"X-Gray-ID": "u"})
    assert registry.get_sample_value("graywsgi_rollbacks_total") == 1
    state.resume("fixed")
    client.get("/", headers={"X-Gray-ID": "u"})
    assert registry.get_sample_value("graywsgi_resumes_total") == 1
    listener.on_rollback("direct")
    assert registry.get_sample_value("graywsgi_rollbacks_total") == 2


def test_a_failing_listener_metric_is_logged_not_raised(caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    listener = PrometheusListener(registry=CollectorRegistry())

    def broken(*args: object) -> t.NoReturn:
        raise ValueError("nope")

    monkeypatch.setattr(listener.rollbacks, "inc", broken)
    with caplog.at_level(logging.WARNING, logger="graywsgi.contrib.prometheus"):
        listener.on_rollback("x")
    assert "nope" in caplog.text


def test_import_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "graywsgi.contrib.prometheus")
    with pytest.raises(ImportError, match=r"pip install graywsgi\[prometheus\]"):
        importlib.import_module("graywsgi.contrib.prometheus")
    monkeypatch.undo()
    assert importlib.import_module("graywsgi.contrib.prometheus") is contrib_prometheus


# -- a real gunicorn, 4 workers, multiprocess mode --------------------------------


def post(port: int, gray_id: str) -> tuple[int, str, dict[str, t.Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=b"", headers={"X-Gray-ID": gray_id, "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        time.sleep(0.005)  # a sync worker busy a moment longer: the next connection goes elsewhere
        return response.status, response.getheader("X-Worker-Pid", ""), json.loads(body)
    finally:
        conn.close()


def scrape(port: int) -> tuple[dict[str, float], str]:
    """POST request counts by route from one scrape, and the text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Connection": "close"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
    finally:
        conn.close()
    by_route: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == DURATION + "_count" and sample.labels["method"] == "POST":
                by_route[sample.labels["route"]] = by_route.get(sample.labels["route"], 0) + sample.value
    return by_route, text


def test_real_gunicorn_4_workers_scrape_sums_over_workers_exactly(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    server = Gunicorn(
        "tests.prometheus_app:application",
        workers=4,
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
        extra=["-c", str(ROOT / "tests" / "prometheus_app.py")],
    )
    try:
        ids = [f"visitor-{n}" for n in range(200)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda i: post(server.port, i), ids, timeout=120))
        assert all(status == 200 for status, _, _ in answers)
        assert [body["route"] for _, _, body in answers] == [expected_route(i) for i in ids]
        pids = {pid for _, pid, _ in answers}
        assert len(pids) > 1, "several workers served requests, so the scrape has to sum them"
        expected = {"canary": sum(expected_route(i) == "canary" for i in ids)}
        expected["stable"] = len(ids) - expected["canary"]

        for _ in range(8):  # each scrape may be answered by another worker: all report the same totals
            by_route, text = scrape(server.port)
            assert by_route == expected, text
        assert any(name.startswith("histogram_") for name in os.listdir(multiproc_dir))

        # a worker that exits (its files stay; child_exit marks it dead): nothing is lost
        gone = int(next(iter(pids)))
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{gone}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(8):
            by_route, text = scrape(server.port)
            assert by_route == expected, text
        assert server.process.poll() is None
    finally:
        server.stop()
