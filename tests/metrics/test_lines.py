"""The lines a request sends (graywsgi/metrics/lines.py): names, dimensions, decisions, degradations, events, trace ids."""

from __future__ import annotations

import typing as t

import pytest
from werkzeug.wrappers import Response

import graywsgi.layers.identifiers
from graywsgi import Extraction, ExtractionBreaker, Router
from graywsgi.layers.events import note, note_internal_error
from graywsgi.layers.guard import Guard
from graywsgi.metrics.layer import Metrics
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import MemoryStateStore
from tests.conftest import BufferedClient, RecordingApp
from tests.metrics.helpers import TRACEPARENT, UdpServer, assert_lines, failing_app, failing_body, split_chain

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


# -- names and decisions --------------------------------------------------------------


@pytest.mark.parametrize(
    "style, expected",
    [
        pytest.param("statsd", "shop.graywsgi.request.stable.none.none.2xx.POST.checkout:{ms}|ms", id="statsd"),
        pytest.param(
            "dogstatsd",
            "shop.graywsgi.request:{ms}|ms|#route:stable,group:none,version:none,status:2xx,method:POST,service:checkout",
            id="dogstatsd",
        ),
        pytest.param(
            "influx",
            "shop.graywsgi.request,route=stable,group=none,version=none,status=2xx,method=POST,service=checkout:{ms}|ms",
            id="influx",
        ),
    ],
)
def test_prefix_and_constant_tags(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, expected: str
) -> None:
    client = BufferedClient(
        build(split_chain(), tag_style=style, prefix="shop.graywsgi", tags={"service": "checkout"}, trace_sample_rate=0)
    )
    client.post("/orders")
    assert_lines(udp.datagram().split("\n")[0], expected)


def test_router_decision_carries_group_reason_and_rule(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="half", split=(Backend("canary", 50, group="B"),)),),
    )
    client = BufferedClient(build(Extraction(Router(RecordingApp(), rules)), tag_style="dogstatsd", trace_sample_rate=0))
    client.get("/", headers={"X-Gray-ID": "user-1"})
    assert_lines(
        udp.datagram(),
        "graywsgi.request:{ms}|ms|#route:canary,group:B,version:none,status:2xx,method:GET",
        "graywsgi.decision:1|c|#route:canary,group:B,reason:weight,rule:half",
    )


def test_rollback_reroutes_are_counted_by_reason(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    )
    state = MemoryStateStore()
    state.rollback("bad deploy")
    guard = Guard(state=state)
    client = BufferedClient(
        build(Extraction(Router(RecordingApp(), rules, guard=guard)), tag_style="influx", trace_sample_rate=0)
    )
    client.get("/", headers={"X-Gray-ID": "user-1"})
    _request, decision = udp.datagram().split("\n")
    assert decision == "graywsgi.decision,route=stable,group=none,reason=rerouted__rolled_back,rule=all:1|c"


# -- dimensions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "app, method, status",
    [
        pytest.param(RecordingApp(status=404), "GET", "4xx", id="404 is 4xx"),
        pytest.param(RecordingApp(status=302), "DELETE", "3xx", id="302 is 3xx"),
        pytest.param(RecordingApp(status=503), "PATCH", "5xx", id="503 is 5xx"),
        pytest.param(RecordingApp(), "BREW", "2xx", id="unknown method is other"),
        pytest.param(failing_app, "GET", "5xx", id="app raised: 5xx"),
        pytest.param(failing_body, "GET", "5xx", id="body raised while streaming: 5xx"),
    ],
)
def test_status_class_and_method(
    build: t.Callable[..., Metrics], udp: UdpServer, app: WSGIApplication, method: str, status: str
) -> None:
    client = BufferedClient(build(Extraction(app), tag_style="dogstatsd", trace_sample_rate=0))
    if app in (failing_app, failing_body):
        with pytest.raises(RuntimeError):
            client.open("/", method=method)
    else:
        client.open("/", method=method)
    line = udp.datagram().split("\n")[0]
    expected_method = method if method != "BREW" else "other"
    assert line.endswith(f",status:{status},method:{expected_method}")


def test_without_extraction_dimensions_are_none(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(Response("plain"), tag_style="influx", trace_sample_rate=1.0))
    client.get("/")
    assert_lines(
        udp.datagram(), "graywsgi.request,route=none,group=none,version=none,status=2xx,method=GET:{ms}|ms"
    )


@pytest.mark.parametrize(
    "headers, level",
    [
        pytest.param({"X-Env": "bad\x01"}, "L1", id="one invalid identifier: L1"),
        pytest.param({"X-Env": "bad\x01", "X-Version": "bad\x02"}, "L2", id="two invalid: L2"),
    ],
)
def test_degrade_levels_are_counted(
    build: t.Callable[..., Metrics], udp: UdpServer, headers: dict[str, str], level: str
) -> None:
    client = BufferedClient(build(split_chain(), tag_style="dogstatsd", trace_sample_rate=0))
    client.get("/", headers=headers)
    lines = udp.datagram().split("\n")
    assert f"graywsgi.extraction.degraded:1|c|#level:{level}" in lines
    assert not any("internal_error" in line for line in lines), "a real L2 is not an internal error"


def test_breaker_open_degrade_l3_is_counted(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    breaker = ExtractionBreaker()
    for _ in range(3):
        breaker.record(breaker.admit(), failed=True, duration=0.0)
    client = BufferedClient(build(Extraction(RecordingApp(), breaker=breaker), tag_style="dogstatsd", trace_sample_rate=0))
    client.get("/")
    assert "graywsgi.extraction.degraded:1|c|#level:L3" in udp.datagram().split("\n")


def test_extraction_failing_open_counts_an_internal_error(
    build: t.Callable[..., Metrics], udp: UdpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: t.Any) -> None:
        raise RuntimeError("bug")

    # The request has no X-Request-ID: the reader draws one, and the draw fails.
    monkeypatch.setattr(graywsgi.layers.identifiers, "new_request_id", broken)
    client = BufferedClient(build(Extraction(RecordingApp()), tag_style="dogstatsd", trace_sample_rate=0))
    assert client.get("/").status_code == 200
    lines = udp.datagram().split("\n")
    assert "graywsgi.extraction.degraded:1|c|#level:L2" in lines
    assert lines.count("graywsgi.internal_error:1|c|#layer:extraction") == 1


def test_router_failing_open_counts_an_internal_error_once(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    from graywsgi.rules.routing import CompiledRules

    class Broken(CompiledRules):  # compiled CompiledRules cannot be patched: a subclass fails instead
        def decide(self, *args: t.Any, **kwargs: t.Any) -> None:
            raise RuntimeError("bug")

    rules = Broken(RuleSet(clusters={"stable": Cluster(), "canary": Cluster()}, rules=()))

    def also_hooked(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        note_internal_error(environ, "router")  # as if Router had the hook too: counted once
        return RecordingApp()(environ, start_response)

    client = BufferedClient(build(Extraction(Router(also_hooked, rules)), tag_style="dogstatsd", trace_sample_rate=0))
    client.get("/")
    lines = udp.datagram().split("\n")
    assert "graywsgi.decision:1|c|#route:stable,group:none,reason:error,rule:none" in lines
    assert lines.count("graywsgi.internal_error:1|c|#layer:router") == 1


def test_layers_report_events_with_note(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    def validating(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        note(environ, "validation.failed", operation="createOrder", status="400")
        note_internal_error(environ, "split")
        start_response("400 Bad Request", [("Content-Type", "application/problem+json")])
        return [b"{}"]

    client = BufferedClient(build(Extraction(validating), tag_style="influx", trace_sample_rate=0))
    client.post("/orders")
    lines = udp.datagram().split("\n")
    assert "graywsgi.validation.failed,operation=createOrder,status=400:1|c" in lines
    assert "graywsgi.internal_error,layer=split:1|c" in lines
    assert lines[0].startswith("graywsgi.request,route=none,group=none,version=none,status=4xx,method=POST:")


# -- trace ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "style, tag",
    [
        pytest.param("dogstatsd", ",trace_id:4bf92f3577b34da6a3ce929d0e0e4736|", id="dogstatsd"),
        pytest.param("influx", ",trace_id=4bf92f3577b34da6a3ce929d0e0e4736:", id="influx"),
    ],
)
def test_sampled_requests_carry_the_trace_id(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, tag: str
) -> None:
    draws = iter([0.05, 0.5])
    client = BufferedClient(build(split_chain(), tag_style=style, trace_sample_rate=0.1, sampler=lambda: next(draws)))
    client.get("/", headers={"traceparent": TRACEPARENT})
    sampled = udp.datagram().split("\n")[0]
    client.get("/", headers={"traceparent": TRACEPARENT})
    not_sampled = udp.datagram().split("\n")[0]
    assert tag.rstrip("|:") in sampled
    assert "trace_id" not in not_sampled


def test_trace_id_falls_back_to_the_request_id(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(split_chain(), tag_style="dogstatsd", trace_sample_rate=1.0))
    client.get("/", headers={"X-Request-ID": "req:42|x"})
    assert udp.datagram().split("\n")[0].endswith(",trace_id:req_42_x")
