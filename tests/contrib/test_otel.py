"""graywsgi.contrib.otel: with the SDK's in-memory exporters, under opentelemetry-instrumentation-wsgi, and once
end to end through the SDK's OTLP/HTTP exporter to a local receiver."""

from __future__ import annotations

import http.server
import importlib
import logging
import sys
import threading
import typing as t

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as InstrumentationMiddleware
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.core.breaker import BreakerPolicy, BreakerState
from graywsgi.core.context import GrayContext
from graywsgi.contrib import otel as contrib_otel
from graywsgi.contrib.otel import (
    GrayBaggage, OpenTelemetryListener, OpenTelemetryMiddleware, baggage_context, gray_baggage,
)
from graywsgi.layers.guard import Guard
from graywsgi.core.hashing import fnv1a_32
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import MemoryStateStore

from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CANARY_PERCENT = 30
RULES = RuleSet(
    id="o1",
    clusters={"stable": Cluster(group="a"), "canary": Cluster(group="b")},
    rules=(Rule(name="split", split=(Backend("canary", CANARY_PERCENT),)),),
)
GRAY = "graywsgi."


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response("ok")(environ, start_response)


def expected_route(gray_id: str) -> str:
    return "canary" if fnv1a_32(gray_id) % 100 < CANARY_PERCENT else "stable"


def ids_for(route: str) -> str:
    return next(f"user-{n}" for n in range(1000) if expected_route(f"user-{n}") == route)


class Telemetry:
    """A local tracer provider with an in-memory span exporter, and a local meter provider with an in-memory reader."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def middleware(self, app: t.Any, **options: t.Any) -> OpenTelemetryMiddleware:
        return OpenTelemetryMiddleware(app, tracer_provider=self.tracer_provider,
                                       meter_provider=self.meter_provider, **options)

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def points(self, name: str) -> dict[tuple[tuple[str, t.Any], ...], t.Any]:
        """Data points of metric ``name``: sorted attribute pairs -> the point."""
        found: dict[tuple[tuple[str, t.Any], ...], t.Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            found[tuple(sorted((point.attributes or {}).items()))] = point
        return found

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> t.Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.shutdown()


def gray_attributes(span: ReadableSpan) -> dict[str, t.Any]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith(GRAY)}


def run_in_outer_span(otel: Telemetry, app: t.Any, **request: t.Any) -> ReadableSpan:
    """One request through ``app`` inside a span started by hand; that span once finished."""
    client = BufferedClient(app)
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("outer", kind=trace.SpanKind.SERVER):
        assert client.get("/", **request).status_code == 200
    (span,) = otel.finished()
    return span


# -- span attributes ------------------------------------------------------------


@pytest.mark.parametrize("route", ["canary", "stable"])
def test_a_split_request_puts_exact_gray_attributes_on_the_current_span(otel: Telemetry, route: str) -> None:
    gray_id = ids_for(route)
    app = otel.middleware(Extraction(Router(hello, RULES)))
    span = run_in_outer_span(otel, app, headers={"X-Gray-ID": gray_id, "X-Version": "2.1.0"})
    assert span.name == "outer"
    assert gray_attributes(span) == {
        "graywsgi.route": route,
        "graywsgi.group": "b" if route == "canary" else "a",
        "graywsgi.version": "2.1.0",
        "graywsgi.degrade_level": 0,
        "graywsgi.source": "untrusted",
        "graywsgi.rule": "split",
        "graywsgi.reason": "weight" if route == "canary" else "default",
    }


def test_a_colour_request(otel: Telemetry) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)))
    span = run_in_outer_span(otel, app, headers={"X-Traffic-Color": "canary"})
    assert gray_attributes(span) == {
        "graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.degrade_level": 0, "graywsgi.reason": "color",
    }


def test_a_request_without_an_id(otel: Telemetry) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)))
    span = run_in_outer_span(otel, app)
    assert gray_attributes(span) == {
        "graywsgi.route": "stable", "graywsgi.group": "a", "graywsgi.degrade_level": 0,
        "graywsgi.rule": "split", "graywsgi.reason": "default",
    }


def test_a_degraded_request_has_its_level(otel: Telemetry) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)))
    span = run_in_outer_span(otel, app, headers={"X-Gray-ID": "user-1", "X-Env": "e" * 300})  # env too long
    assert gray_attributes(span) == {
        "graywsgi.route": expected_route("user-1"), "graywsgi.group": "b" if expected_route("user-1") == "canary"
        else "a", "graywsgi.degrade_level": 1, "graywsgi.source": "untrusted", "graywsgi.rule": "split",
        "graywsgi.reason": "weight" if expected_route("user-1") == "canary" else "default",
    }
    otel.spans.clear()
    span = run_in_outer_span(otel, app, headers={"X-Gray-ID": "u" * 300, "X-Env": "e" * 300})  # both: fallback
    attributes = gray_attributes(span)
    assert attributes["graywsgi.degrade_level"] == 2
    assert "graywsgi.source" not in attributes


def test_without_a_span_and_without_start_span_nothing_is_exported(otel: Telemetry) -> None:
    client = BufferedClient(otel.middleware(Extraction(Router(hello, RULES))))
    assert client.get("/", headers={"X-Gray-ID": "user-1"}).status_code == 200
    assert otel.finished() == ()
    assert sum(p.count for p in otel.points("graywsgi.request.duration").values()) == 1


def test_start_span_makes_one_server_span_with_http_semconv_attributes(otel: Telemetry) -> None:
    seen: list[trace.Span] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(trace.get_current_span())
        return hello(environ, start_response)

    client = BufferedClient(otel.middleware(Extraction(Router(app, RULES)), start_span=True))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    gray_id = ids_for("canary")
    assert client.get("/orders", headers={"X-Gray-ID": gray_id, "traceparent": parent}).status_code == 200
    (span,) = otel.finished()
    assert span.name == "GET"
    assert span.kind is trace.SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET", "url.path": "/orders", "url.scheme": "http",
        "http.response.status_code": 200,
        "graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.degrade_level": 0,
        "graywsgi.source": "untrusted", "graywsgi.rule": "split", "graywsgi.reason": "weight",
    }
    # continues the caller's trace, and is the current span while the app runs
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert seen[0].get_span_context().span_id == span.context.span_id
    assert span.status.status_code is trace.StatusCode.UNSET


def test_start_span_marks_5xx_and_a_raising_app_as_errors(otel: Telemetry) -> None:
    def fails(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response("no", status=503)(environ, start_response)

    def raises(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise KeyError("boom")

    BufferedClient(otel.middleware(fails, start_span=True)).open("/", method="BREW")
    with pytest.raises(KeyError):
        BufferedClient(otel.middleware(raises, start_span=True)).get("/")
    first, second = otel.finished()
    assert first.name == "HTTP"
    assert first.attributes is not None and first.attributes["http.request.method"] == "_OTHER"
    assert first.attributes["http.request.method_original"] == "BREW"
    assert first.attributes["error.type"] == "503"
    assert first.status.status_code is trace.StatusCode.ERROR
    assert second.attributes is not None and second.attributes["error.type"] == "KeyError"
    assert second.status.status_code is trace.StatusCode.ERROR


def test_start_span_with_an_outer_span_adds_no_span(otel: Telemetry) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)), start_span=True)
    span = run_in_outer_span(otel, app, headers={"X-Gray-ID": "user-3"})
    assert span.name == "outer"
    assert gray_attributes(span)["graywsgi.route"] == expected_route("user-3")


def test_under_opentelemetry_instrumentation_wsgi_the_attributes_land_on_its_server_span(otel: Telemetry) -> None:
    inner = otel.middleware(Extraction(Router(hello, RULES)), start_span=True)
    app = InstrumentationMiddleware(inner, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    gray_id = ids_for("canary")
    assert BufferedClient(app).get("/x", headers={"X-Gray-ID": gray_id}).status_code == 200
    (span,) = otel.finished()
    assert span.kind is trace.SpanKind.SERVER
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.wsgi"
    assert gray_attributes(span) == {
        "graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.degrade_level": 0,
        "graywsgi.source": "untrusted", "graywsgi.rule": "split", "graywsgi.reason": "weight",
    }


def test_a_custom_namespace(otel: Telemetry) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)), namespace="gray")
    span = run_in_outer_span(otel, app, headers={"X-Traffic-Color": "canary"})
    assert (span.attributes or {})["gray.route"] == "canary"
    assert not gray_attributes(span)
    assert otel.points("gray.request.duration") and otel.points("gray.decisions")


# -- metrics ---------------------------------------------------------------------


def test_duration_histogram_and_decision_counter_are_exact(otel: Telemetry) -> None:
    client = BufferedClient(otel.middleware(Extraction(Router(hello, RULES))))
    ids = [f"user-{n}" for n in range(100)]
    for gray_id in ids:
        assert client.get("/", headers={"X-Gray-ID": gray_id}).status_code == 200
    client.post("/", headers={"X-Traffic-Color": "canary"})
    canary = sum(expected_route(i) == "canary" for i in ids)
    assert 0 < canary < len(ids)
    durations = otel.points("graywsgi.request.duration")

    def key(route: str, method: str) -> tuple[tuple[str, t.Any], ...]:
        return tuple(sorted({
            "graywsgi.route": route, "graywsgi.group": "b" if route == "canary" else "a",
            "graywsgi.status_class": "2xx", "http.request.method": method, "http.response.status_code": 200,
        }.items()))

    assert {k: p.count for k, p in durations.items()} == {
        key("canary", "GET"): canary, key("stable", "GET"): len(ids) - canary, key("canary", "POST"): 1,
    }
    assert all(p.sum > 0 and p.explicit_bounds[0] == 0.005 for p in durations.values())
    decisions = {dict(k)["graywsgi.reason"]: (dict(k), p.value) for k, p in otel.points("graywsgi.decisions").items()}
    assert decisions == {
        "weight": ({"graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.reason": "weight",
                    "graywsgi.rule": "split"}, canary),
        "default": ({"graywsgi.route": "stable", "graywsgi.group": "a", "graywsgi.reason": "default",
                     "graywsgi.rule": "split"}, len(ids) - canary),
        "color": ({"graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.reason": "color",
                   "graywsgi.rule": "none"}, 1),
    }


def test_no_context_an_unknown_method_and_a_raise(otel: Telemetry) -> None:
    def raises(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise RuntimeError("boom")

    BufferedClient(otel.middleware(hello)).open("/", method="BREW")
    with pytest.raises(RuntimeError):
        BufferedClient(otel.middleware(raises)).get("/")
    counts = {k: p.count for k, p in otel.points("graywsgi.request.duration").items()}
    assert counts == {
        tuple(sorted({"graywsgi.route": "none", "graywsgi.group": "none", "graywsgi.status_class": "2xx",
                      "http.request.method": "_OTHER", "http.response.status_code": 200}.items())): 1,
        tuple(sorted({"graywsgi.route": "none", "graywsgi.group": "none", "graywsgi.status_class": "5xx",
                      "http.request.method": "GET", "error.type": "RuntimeError"}.items())): 1,
    }
    assert otel.points("graywsgi.decisions") == {}


def test_metric_attribute_values_are_bounded(otel: Telemetry) -> None:
    clusters = {f"c{n}": Cluster() for n in range(5)}
    app = OpenTelemetryMiddleware(hello, meter_provider=otel.meter_provider, max_values=2)
    client = BufferedClient(app)
    for name in clusters:
        client.environ_base = {"graywsgi.context": GrayContext("r", route=name + " x")}
        client.get("/")
    routes = sorted(dict(k)["graywsgi.route"] for k in otel.points("graywsgi.request.duration"))
    assert routes == ["c0_x", "c1_x", "other"]


def test_a_streamed_body_is_timed_until_close(otel: Telemetry) -> None:
    def stream(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        yield b"a"
        yield b"b"

    from werkzeug.test import Client
    response = Client(otel.middleware(stream)).get("/")
    assert otel.points("graywsgi.request.duration") == {}
    assert response.get_data() == b"ab"
    response.close()
    assert sum(p.count for p in otel.points("graywsgi.request.duration").values()) == 1


def test_listener_counts_a_real_breaker_trip_rollbacks_and_resumes(otel: Telemetry) -> None:
    listener = OpenTelemetryListener(meter_provider=otel.meter_provider)
    state = MemoryStateStore()
    guard = Guard(policy=BreakerPolicy(min_requests=5, error_rate=0.5, cooldown=30, probes=2), state=state,
                  listeners=[listener], clock=lambda: 1000.0)
    failing = {"on": False}

    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response("canary", status=500 if failing["on"] else 200)(environ, start_response)

    rules = RuleSet(id="all", clusters={"stable": Cluster(), "canary": Cluster()},
                    rules=(Rule(name="all", split=(Backend("canary", 100),)),))
    client = BufferedClient(otel.middleware(Extraction(Router(hello, rules, apps={"canary": canary}, guard=guard))))
    assert [client.get("/", headers={"X-Gray-ID": "u"}).data for _ in range(3)] == [b"canary"] * 3
    failing["on"] = True
    assert [client.get("/", headers={"X-Gray-ID": "u"}).status_code for _ in range(10)] == [200] * 10
    assert guard.breaker("canary").state is BreakerState.OPEN
    assert {k: p.value for k, p in otel.points("graywsgi.breaker.trips").items()} == {
        (("graywsgi.route", "canary"),): 1,
    }
    assert otel.points("graywsgi.rollbacks") == {}
    state.rollback("bad deploy")
    client.get("/", headers={"X-Gray-ID": "u"})
    assert [p.value for p in otel.points("graywsgi.rollbacks").values()] == [1]
    state.resume("fixed")
    client.get("/", headers={"X-Gray-ID": "u"})
    assert [p.value for p in otel.points("graywsgi.resumes").values()] == [1]
    reasons = {dict(k)["graywsgi.reason"] for k in otel.points("graywsgi.decisions")}
    assert "weight" in reasons and len(reasons) >= 2


# -- baggage ---------------------------------------------------------------------


def test_gray_baggage_leaves_the_gray_id_out_unless_asked() -> None:
    context = GrayContext("r-1", gray_id="user-7", env="prod", version="2.0", route="canary", group="b")
    assert gray_baggage(context) == {
        "graywsgi.route": "canary", "graywsgi.group": "b", "graywsgi.version": "2.0", "graywsgi.env": "prod",
    }
    assert gray_baggage(context, keys=("gray_id", "route"), namespace="g") == {"g.gray_id": "user-7", "g.route": "canary"}
    assert gray_baggage(None) == {}
    with pytest.raises(ValueError, match="gray_key"):
        gray_baggage(context, keys=("gray_key",))
    with pytest.raises(ValueError):
        GrayBaggage(hello, keys=("sources",))


def test_baggage_goes_downstream_through_the_default_propagators(otel: Telemetry) -> None:
    outgoing: list[dict[str, str]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        outgoing.append(headers)
        start_response("200 OK", [])
        yield b"body"
        headers = {}
        propagate.inject(headers)  # while the body is iterated too
        outgoing.append(headers)

    gray_id = ids_for("canary")
    wrapped = InstrumentationMiddleware(
        otel.middleware(Extraction(Router(GrayBaggage(app), RULES))),
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    response = BufferedClient(wrapped).get("/", headers={
        "X-Gray-ID": gray_id, "X-Env": "prod", "baggage": "tenant=acme,graywsgi.route=forged",
    })
    assert response.status_code == 200
    assert len(outgoing) == 2
    for headers in outgoing:
        members = dict(m.split("=", 1) for m in headers["baggage"].split(","))
        assert members == {"tenant": "acme", "graywsgi.route": "canary", "graywsgi.group": "b",
                           "graywsgi.env": "prod"}
        assert "traceparent" in headers
    assert baggage.get_all() == {}  # nothing leaks out of the request


def test_baggage_keys_can_include_the_gray_id_and_baggage_context_reads_it_back() -> None:
    seen: list[dict[str, str]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(baggage_context())
        return hello(environ, start_response)

    client = BufferedClient(Extraction(Router(GrayBaggage(app, keys=("gray_id", "route")), RULES)))
    client.get("/", headers={"X-Gray-ID": "user 7"})
    assert seen == [{"gray_id": "user 7", "route": expected_route("user 7")}]
    headers: dict[str, str] = {}
    propagate.inject(headers)
    assert "baggage" not in headers


def test_without_a_context_graybaggage_adds_nothing() -> None:
    seen: list[dict[str, object]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(dict(baggage.get_all()))
        return hello(environ, start_response)

    assert BufferedClient(GrayBaggage(app)).get("/").status_code == 200
    assert seen == [{}]


# -- never fails a request -------------------------------------------------------


class FailingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: t.Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector down")

    def shutdown(self) -> None:
        pass


def test_a_failing_exporter_does_not_fail_the_request() -> None:
    exporter = FailingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = BufferedClient(OpenTelemetryMiddleware(Extraction(Router(hello, RULES)), tracer_provider=provider,
                                                    meter_provider=MeterProvider(), start_span=True))
    for _ in range(3):
        assert client.get("/", headers={"X-Gray-ID": "user-1"}).data == b"ok"
    assert exporter.calls == 3
    provider.shutdown()


def test_a_failing_recorder_is_logged_not_raised(otel: Telemetry, caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = otel.middleware(Extraction(Router(hello, RULES)), start_span=True)

    def broken(*args: object, **kwargs: object) -> t.NoReturn:
        raise ValueError("nope")

    monkeypatch.setattr(app.duration, "record", broken)
    monkeypatch.setattr(app.tracer, "start_span", broken)
    with caplog.at_level(logging.WARNING, logger="graywsgi.contrib.otel"):
        assert BufferedClient(app).get("/", headers={"X-Gray-ID": "user-1"}).data == b"ok"
        assert BufferedClient(app).get("/", headers={"X-Gray-ID": "user-1"}).data == b"ok"
    assert "nope" in caplog.text
    assert caplog.text.count("the request is unaffected") == 1  # rate-limited
    listener = OpenTelemetryListener(meter_provider=otel.meter_provider)
    monkeypatch.setattr(listener.rollbacks, "add", broken)
    listener.on_rollback("x")


def test_import_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "graywsgi.contrib.otel")
    with pytest.raises(ImportError, match=r"pip install graywsgi\[otel\]"):
        importlib.import_module("graywsgi.contrib.otel")
    monkeypatch.undo()
    assert importlib.import_module("graywsgi.contrib.otel") is contrib_otel


# -- end to end: the SDK's OTLP/HTTP exporter to a local receiver -----------------


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.received = threading.Event()


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.server.paths.append(self.path)
        self.server.requests.append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.received.set()

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


def test_end_to_end_through_the_otlp_http_exporter() -> None:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    try:
        endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
        client = BufferedClient(OpenTelemetryMiddleware(Extraction(Router(hello, RULES)), tracer_provider=provider,
                                                        meter_provider=MeterProvider(), start_span=True))
        gray_id = ids_for("canary")
        assert client.get("/pay", headers={"X-Gray-ID": gray_id}).status_code == 200
        assert provider.force_flush(timeout_millis=10_000)
        assert receiver.received.wait(10)
    finally:
        provider.shutdown()
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)
    assert receiver.paths == ["/v1/traces"]
    spans = [span for request in receiver.requests for rs in request.resource_spans
             for ss in rs.scope_spans for span in ss.spans]
    (span,) = spans
    attributes = {a.key: a.value for a in span.attributes}
    assert span.name == "GET"
    assert attributes["graywsgi.route"].string_value == "canary"
    assert attributes["graywsgi.group"].string_value == "b"
    assert attributes["graywsgi.reason"].string_value == "weight"
    assert attributes["graywsgi.degrade_level"].int_value == 0
    assert attributes["http.response.status_code"].int_value == 200
    resource = {a.key: a.value.string_value for a in receiver.requests[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "shop"
