"""graywsgi.metrics against real statsd sockets on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

import graywsgi.layers.identifiers
from graywsgi import CanarySplit, Extraction, ExtractionBreaker, Router
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.errors import ConfigurationError
from graywsgi.layers.guard import Guard
from graywsgi.metrics.layer import (
    EVENTS_KEY,
    DogStatsdStyle,
    Metrics,
    MetricsListener,
    PlainStyle,
    StatsdSink,
    TagStyle,
    note,
    note_internal_error,
    sanitize_name,
)
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import MemoryStateStore
from tests.conftest import BufferedClient, RecordingApp

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ROOT = Path(__file__).resolve().parents[2]
MS = r"\d+\.\d{3}"  # a timer value as sent: milliseconds, three decimals
GRAY = {"X-Gray-ID": "user-11", "X-Version": "1.5.0"}  # user-11 hashes into the 15 % canary


class UdpServer:
    """A statsd server stand-in: a UDP socket that collects datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.port: int = self.sock.getsockname()[1]

    def datagram(self) -> str:
        return self.sock.recv(65535).decode("ascii")

    def datagrams(self, count: int) -> list[str]:
        return [self.datagram() for _ in range(count)]

    def datagram_from(self) -> tuple[str, int]:
        data, address = self.sock.recvfrom(65535)
        return data.decode("ascii"), address[1]

    def nothing_more(self, wait: float = 0.05) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recv(65535)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


class StreamServer:
    """A TCP (or Unix) listener that collects newline-separated lines."""

    def __init__(self, family: int = socket.AF_INET, path: str | None = None, read: bool = True) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if not read:  # a peer that never reads: keep its receive buffer small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if family == socket.AF_INET:
            self.sock.bind(("127.0.0.1", 0))
            self.port: int = self.sock.getsockname()[1]
        else:
            self.sock.bind(path)
            self.port = 0
        self.sock.listen(8)
        self.lines: list[str] = []
        self.connections: list[socket.socket] = []
        self._cond = threading.Condition()
        self._read = read
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections.append(conn)
            if self._read:
                threading.Thread(target=self._reader, args=(conn,), daemon=True).start()

    def _reader(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            with self._cond:
                self.lines.extend(line.decode("ascii") for line in complete if line)
                self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.lines) >= count, timeout)
            return list(self.lines)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def udp() -> t.Iterator[UdpServer]:
    server = UdpServer()
    yield server
    server.sock.close()


@pytest.fixture
def tcp() -> t.Iterator[StreamServer]:
    server = StreamServer()
    yield server
    server.close()


@pytest.fixture
def made() -> t.Iterator[list[Metrics]]:
    """Metrics built by a test; their sinks are closed afterwards."""
    instances: list[Metrics] = []
    yield instances
    for metrics in instances:
        metrics.sink.close()


@pytest.fixture
def build(made: list[Metrics], udp: UdpServer) -> t.Callable[..., Metrics]:
    def factory(app: WSGIApplication, **options: t.Any) -> Metrics:
        options.setdefault("port", udp.port)
        metrics = Metrics(app, **options)
        made.append(metrics)
        return metrics

    return factory


def split_chain(**options: t.Any) -> WSGIApplication:
    return Extraction(CanarySplit(RecordingApp(), percent=15), **options)


def assert_lines(datagram: str, *patterns: str) -> None:
    """Each line of ``datagram`` matches its pattern; ``{ms}`` stands for the timer value."""
    lines = datagram.split("\n")
    assert len(lines) == len(patterns), datagram
    for line, pattern in zip(lines, patterns):
        regex = re.escape(pattern).replace(re.escape("{ms}"), MS)
        assert re.fullmatch(regex, line), f"{line!r} does not match {pattern!r}"


# -- wire formats --------------------------------------------------------------


@pytest.mark.parametrize(
    "style, request_line, decision_line",
    [
        pytest.param(
            "statsd",
            "graywsgi.request.canary.none.1_5_0.2xx.GET:{ms}|ms",
            "graywsgi.decision.canary.none.split.none:1|c",
            id="plain statsd: values in the name",
        ),
        pytest.param(
            "dogstatsd",
            "graywsgi.request:{ms}|ms|#route:canary,group:none,version:1.5.0,status:2xx,method:GET",
            "graywsgi.decision:1|c|#route:canary,group:none,reason:split,rule:none",
            id="dogstatsd tags",
        ),
        pytest.param(
            "influx",
            "graywsgi.request,route=canary,group=none,version=1.5.0,status=2xx,method=GET:{ms}|ms",
            "graywsgi.decision,route=canary,group=none,reason=split,rule=none:1|c",
            id="influx tags",
        ),
    ],
)
def test_one_datagram_per_request_in_each_tag_style(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, request_line: str, decision_line: str
) -> None:
    client = BufferedClient(build(split_chain(), tag_style=style, trace_sample_rate=0))
    assert client.get("/orders", headers=GRAY).status_code == 200
    assert_lines(udp.datagram(), request_line, decision_line)
    assert udp.nothing_more()


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


def failing_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    raise RuntimeError("boom")


def failing_body(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("boom while streaming")


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


def test_timer_runs_until_the_response_is_closed(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    def streaming(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        for _ in range(3):
            time.sleep(0.05)
            yield b"chunk"

    metrics = build(Extraction(streaming), trace_sample_rate=0)
    response = metrics(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None}, lambda status, headers, exc=None: None
    )
    assert udp.nothing_more(), "nothing may be sent before the response is closed"
    assert b"".join(response) == b"chunk" * 3
    assert udp.nothing_more(), "nor before it is closed, even when fully read"
    response.close()  # type: ignore[attr-defined]
    value = float(re.search(r":(\d+\.\d+)\|ms", udp.datagram()).group(1))  # type: ignore[union-attr]
    assert value >= 150.0


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


def test_note_without_metrics_does_nothing() -> None:
    environ: dict[str, t.Any] = {}
    note(environ, "validation.failed", operation="x")
    assert EVENTS_KEY not in environ


# -- breaker and rollback events ---------------------------------------------------------


def test_listener_counts_trips_and_reports_breaker_state(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    metrics = build(Response("ok"), tag_style="dogstatsd")
    guard = Guard(listeners=[MetricsListener(metrics)], policy=BreakerPolicy(min_requests=5))
    guard.breaker("canary").trip("operator")
    received = {udp.datagram(), udp.datagram()}
    assert received == {"graywsgi.breaker.state:2|g|#route:canary", "graywsgi.breaker.trip:1|c|#route:canary"}
    guard.breaker("canary").reset("operator")
    assert udp.datagram() == "graywsgi.breaker.state:0|g|#route:canary"
    MetricsListener(metrics).on_rollback("bad deploy")
    assert udp.datagram() == "graywsgi.rollback:1|c"


def test_trip_by_error_rate_is_counted_once(made: list[Metrics], udp: UdpServer) -> None:
    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    )

    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("500 Internal Server Error", [])
        return [b"no"]

    listener = MetricsListener()  # made before the Metrics layer that binds it
    guard = Guard(listeners=[listener], policy=BreakerPolicy(min_requests=5), retry_on_stable=False)
    metrics = Metrics(
        Extraction(Router(RecordingApp(), rules, apps={"canary": canary}, guard=guard)),
        port=udp.port,
        tag_style="dogstatsd",
        trace_sample_rate=0,
        listeners=[listener],
    )
    made.append(metrics)
    assert listener.metrics is metrics
    client = BufferedClient(metrics)
    for _ in range(8):
        client.post("/", headers={"X-Gray-ID": "u"})
    datagrams = []
    udp.sock.settimeout(0.3)
    try:
        while True:
            datagrams.append(udp.datagram())
    except socket.timeout:
        pass
    trips = [d for d in datagrams if d.startswith("graywsgi.breaker.trip")]
    assert trips == ["graywsgi.breaker.trip:1|c|#route:canary"]
    assert "graywsgi.breaker.state:2|g|#route:canary" in datagrams
    requests = [d for d in datagrams if d.startswith("graywsgi.request")]
    assert len(requests) == 8
    assert sum("route:canary,group:none,version:none,status:5xx" in d for d in requests) == 5
    assert sum("reason:rerouted__breaker_open" in d for d in requests) == 3


# -- sanitising and cardinality ------------------------------------------------------------


@pytest.mark.parametrize(
    "style, expected",
    [
        pytest.param("statsd", "graywsgi.request.canary.none.a_b_c_d_e_f_g_h_.2xx.GET:{ms}|ms", id="statsd"),
        pytest.param(
            "dogstatsd",
            "graywsgi.request:{ms}|ms|#route:canary,group:none,version:a_b_c_d_e_f_g_h_,status:2xx,method:GET",
            id="dogstatsd",
        ),
        pytest.param(
            "influx",
            "graywsgi.request,route=canary,group=none,version=a_b_c_d_e_f_g_h_,status=2xx,method=GET:{ms}|ms",
            id="influx",
        ),
    ],
)
def test_hostile_header_values_are_sanitised(
    build: t.Callable[..., Metrics], udp: UdpServer, style: str, expected: str
) -> None:
    client = BufferedClient(build(split_chain(), tag_style=style, trace_sample_rate=0))
    # every character here is a valid header value character
    client.get("/", headers={"X-Version": "a:b|c@d,e#f=g h\u00e9", "X-Gray-ID": "user-11"})
    assert_lines(udp.datagram().split("\n")[0], expected)


def test_event_names_tags_and_newlines_are_sanitised(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        note(environ, "evil:name|c\n@x", **{"k,ey": "v:a|l\nue#", "layer": "x" * 500})
        start_response("200 OK", [])
        return [b""]

    client = BufferedClient(build(app, tag_style="dogstatsd", trace_sample_rate=0, max_value_length=16))
    client.get("/")
    lines = udp.datagram().split("\n")
    assert len(lines) == 2
    assert lines[1] == "graywsgi.evil_name_c__x:1|c|#k_ey:v_a_l_ue_,layer:" + "x" * 16


def test_sanitize_name() -> None:
    assert sanitize_name("a..b:c|d@e,f#g\nh") == "a.b_c_d_e_f_g_h"
    assert sanitize_name("...") == "_"
    assert len(sanitize_name("x" * 1000)) == 200


def test_each_dimension_keeps_a_bounded_number_of_values(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(split_chain(), tag_style="dogstatsd", trace_sample_rate=0, max_values=3))
    seen = []
    for n in range(6):
        client.get("/", headers={"X-Version": f"9.9.{n}"})
        seen.append(re.search(r"version:([^,]+)", udp.datagram()).group(1))  # type: ignore[union-attr]
    assert seen == ["9.9.0", "9.9.1", "9.9.2", "other", "other", "other"]
    client.get("/", headers={"X-Version": "9.9.1"})
    assert "version:9.9.1" in udp.datagram(), "values already admitted keep their name"


# -- trace ids ----------------------------------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


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


def test_plain_statsd_never_puts_trace_ids_in_names(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    client = BufferedClient(build(split_chain(), tag_style="statsd", trace_sample_rate=1.0))
    client.get("/", headers={"traceparent": TRACEPARENT})
    assert "4bf92f35" not in udp.datagram()


class ListSink(StatsdSink):
    """Keeps the lines instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[str]] = []

    def send(self, lines: t.Sequence[str]) -> None:
        self.sent.append(list(lines))


def test_sampling_rate_is_respected_within_bounds() -> None:
    sink = ListSink()
    client = BufferedClient(Metrics(split_chain(), sink=sink, tag_style="dogstatsd", trace_sample_rate=0.1))
    total = 5000
    for _ in range(total):
        client.get("/", headers={"traceparent": TRACEPARENT})
    sampled = sum("trace_id:" in lines[0] for lines in sink.sent)
    # binomial(5000, 0.1): mean 500, sd 21.2 -- 6 sd either side
    assert 373 <= sampled <= 627, sampled


def test_default_trace_sample_rate_is_small() -> None:
    metrics = Metrics(Response("ok"), sink=ListSink(), tag_style="dogstatsd")
    assert 0 < metrics.trace_sample_rate <= 0.01


# -- datagram size -----------------------------------------------------------------------


def test_lines_are_split_into_datagrams_of_at_most_max_udp_size(
    build: t.Callable[..., Metrics], udp: UdpServer
) -> None:
    def chatty(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        for n in range(20):
            note(environ, f"event{n:02d}")
        start_response("200 OK", [])
        return [b""]

    client = BufferedClient(build(chatty, trace_sample_rate=0, max_udp_size=200))
    client.get("/")
    lines: list[str] = []
    while len(lines) < 21:
        datagram = udp.datagram()
        assert len(datagram.encode()) <= 200
        lines.extend(datagram.split("\n"))
    assert udp.nothing_more()
    assert lines[1:] == [f"graywsgi.event{n:02d}:1|c" for n in range(20)]


# -- transports ---------------------------------------------------------------------------


def test_tcp_transport(made: list[Metrics], tcp: StreamServer) -> None:
    metrics = Metrics(split_chain(), transport="tcp", port=tcp.port, tag_style="dogstatsd", trace_sample_rate=0)
    made.append(metrics)
    client = BufferedClient(metrics)
    client.get("/", headers=GRAY)
    client.post("/", headers=GRAY)
    lines = tcp.wait_for(4)
    assert len(lines) == 4
    assert_lines(
        "\n".join(lines),
        "graywsgi.request:{ms}|ms|#route:canary,group:none,version:1.5.0,status:2xx,method:GET",
        "graywsgi.decision:1|c|#route:canary,group:none,reason:split,rule:none",
        "graywsgi.request:{ms}|ms|#route:canary,group:none,version:1.5.0,status:2xx,method:POST",
        "graywsgi.decision:1|c|#route:canary,group:none,reason:split,rule:none",
    )


def test_unix_socket_transport(made: list[Metrics]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "statsd.sock")
        server = StreamServer(socket.AF_UNIX, path)
        try:
            metrics = Metrics(Response("ok"), transport="unix", socket_path=path, tag_style="influx")
            made.append(metrics)
            BufferedClient(metrics).get("/")
            assert_lines(
                server.wait_for(1)[0],
                "graywsgi.request,route=none,group=none,version=none,status=2xx,method=GET:{ms}|ms",
            )
        finally:
            server.close()


def test_host_names_are_resolved_off_the_request_path(made: list[Metrics], udp: UdpServer) -> None:
    metrics = Metrics(Response("ok"), host="localhost", port=udp.port, tag_style="dogstatsd")
    made.append(metrics)
    client = BufferedClient(metrics)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        client.get("/")
        try:
            udp.sock.settimeout(0.05)
            datagram = udp.datagram()
            break
        except socket.timeout:
            continue
    else:
        pytest.fail("localhost never resolved")
    udp.sock.settimeout(2.0)
    assert datagram.startswith("graywsgi.request:")


# -- never hurts a request ----------------------------------------------------------------


def timed_requests(client: BufferedClient, count: int) -> float:
    """The slowest of ``count`` requests, in seconds; each must answer 200."""
    slowest = 0.0
    for _ in range(count):
        started = time.perf_counter()
        assert client.get("/").status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_udp_to_a_closed_port_never_fails_a_request(made: list[Metrics]) -> None:
    metrics = Metrics(Extraction(RecordingApp()), port=free_port())
    made.append(metrics)
    assert timed_requests(BufferedClient(metrics), 200) < 0.5


def test_tcp_to_a_closed_port_is_counted_and_logged_once_per_interval(
    made: list[Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    sink = StatsdSink(transport="tcp", port=free_port(), retry_after=0.0, error_interval=60.0, clock=lambda: now[0])
    metrics = Metrics(Extraction(RecordingApp()), sink=sink)
    made.append(metrics)
    client = BufferedClient(metrics)
    with caplog.at_level(logging.WARNING, logger="graywsgi.metrics"):
        assert timed_requests(client, 50) < 0.5
        deadline = time.monotonic() + 5
        while sink.health().get("send", 0) < 2 and time.monotonic() < deadline:
            client.get("/")
            time.sleep(0.01)
        records = [r for r in caplog.records if r.name == "graywsgi.metrics"]
        assert len(records) == 1
        assert "ConnectionRefusedError" in records[0].getMessage()
        now[0] = 61.0
        failures_before = sink.health()["send"]
        while sink.health()["send"] == failures_before and time.monotonic() < deadline:
            client.get("/")
            time.sleep(0.01)
    records = [r for r in caplog.records if r.name == "graywsgi.metrics"]
    assert len(records) == 2, "a new interval logs once more"
    assert sink.health()["lines_dropped"] >= 2


def test_a_raising_formatter_never_fails_a_request(
    made: list[Metrics], udp: UdpServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(DogStatsdStyle):
        def line(self, name: str, value: str, fragment: str) -> str:
            raise ValueError("formatter bug")

    metrics = Metrics(Extraction(RecordingApp()), port=udp.port, tag_style=Broken())
    made.append(metrics)
    with caplog.at_level(logging.WARNING, logger="graywsgi.metrics"):
        assert timed_requests(BufferedClient(metrics), 20) < 0.5
    assert metrics.health()["format"] == 20
    assert [r.getMessage().split(";")[0] for r in caplog.records if r.name == "graywsgi.metrics"] == [
        "graywsgi metrics: format failed (ValueError: formatter bug)"
    ]
    assert udp.nothing_more()


def test_a_full_socket_buffer_drops_and_counts(made: list[Metrics], udp: UdpServer) -> None:
    metrics = Metrics(Extraction(RecordingApp()), port=udp.port, tag_style="dogstatsd")
    made.append(metrics)
    client = BufferedClient(metrics)
    client.get("/")
    udp.datagram()
    real = metrics.sink._udp
    assert real is not None

    class FullBuffer:
        def sendto(self, data: bytes, address: t.Any) -> int:
            raise BlockingIOError(11, "Resource temporarily unavailable")

    metrics.sink._udp = real._replace(sock=FullBuffer())  # type: ignore[arg-type]
    assert timed_requests(client, 10) < 0.5
    assert metrics.health()["buffer full"] == 10
    metrics.sink._udp = real
    client.get("/")
    lines = udp.datagram().split("\n")
    assert lines[-1] == "graywsgi.metrics.dropped:10|c", "the loss is reported with the next datagram"


def test_a_tiny_send_buffer_and_a_peer_that_never_reads(made: list[Metrics]) -> None:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    peer.bind(("127.0.0.1", 0))
    try:
        metrics = Metrics(Extraction(RecordingApp()), port=peer.getsockname()[1], tag_style="dogstatsd", max_udp_size=9000)
        made.append(metrics)
        client = BufferedClient(metrics)
        client.get("/")
        assert metrics.sink._udp is not None
        metrics.sink._udp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        assert timed_requests(client, 500) < 0.5
    finally:
        peer.close()


def test_a_tcp_peer_that_never_reads_never_holds_a_request(made: list[Metrics]) -> None:
    server = StreamServer(read=False)
    try:
        sink = StatsdSink(transport="tcp", port=server.port, timeout=0.2, queue_size=500)
        make_client = sink._stream_client

        def small_buffer_client() -> t.Any:
            # a small, fixed send buffer fills in a few hundred lines (no autotuning)
            client = make_client()
            connect = client.connect

            def connect_small() -> None:
                connect()
                client._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

            client.connect = connect_small
            return client

        sink._stream_client = small_buffer_client  # type: ignore[method-assign]
        metrics = Metrics(Extraction(RecordingApp()), sink=sink, tags={"pad": "x" * 60})
        made.append(metrics)
        client = BufferedClient(metrics)
        started = time.perf_counter()
        slowest = timed_requests(client, 3000)
        assert slowest < 0.5
        assert time.perf_counter() - started < 30
        deadline = time.monotonic() + 5
        while not sink.health() and time.monotonic() < deadline:
            client.get("/")
        assert sink.health().get("lines_dropped", 0) > 0
    finally:
        server.close()


def test_an_unresolvable_host_never_fails_a_request(made: list[Metrics]) -> None:
    metrics = Metrics(Extraction(RecordingApp()), host="metrics.invalid", retry_after=60.0)
    made.append(metrics)
    assert timed_requests(BufferedClient(metrics), 50) < 0.5
    assert metrics.health()["not connected"] >= 1


# -- threads ------------------------------------------------------------------------------


def test_threads_udp_every_request_counted_once(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    metrics = build(split_chain(), tag_style="dogstatsd", trace_sample_rate=0)
    threads, per_thread = 4, 50
    received: list[str] = []

    def receive() -> None:
        for _ in range(threads * per_thread):
            received.append(udp.datagram())

    receiver = threading.Thread(target=receive)
    receiver.start()

    def worker(n: int) -> None:
        client = BufferedClient(metrics)
        for _ in range(per_thread):
            client.get("/", headers={"X-Gray-ID": f"thread-{n}", "X-Version": f"{n}.0.0"})

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    receiver.join()
    assert len(received) == threads * per_thread
    for n in range(threads):
        assert sum(f"version:{n}.0.0," in d for d in received) == per_thread


def test_threads_tcp_exact_counts(made: list[Metrics], tcp: StreamServer) -> None:
    metrics = Metrics(split_chain(), transport="tcp", port=tcp.port, tag_style="influx", trace_sample_rate=0)
    made.append(metrics)
    threads, per_thread = 8, 200

    def worker(n: int) -> None:
        client = BufferedClient(metrics)
        for _ in range(per_thread):
            client.get("/", headers={"X-Version": f"{n}.0.0"})

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    lines = tcp.wait_for(threads * per_thread * 2)
    requests = [line for line in lines if line.startswith("graywsgi.request,")]
    assert len(requests) == threads * per_thread
    for n in range(threads):
        assert sum(f",version={n}.0.0," in line for line in requests) == per_thread
    assert metrics.health() == {}


# -- fork safety --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_nothing_is_opened_or_started_at_construction(transport: str) -> None:
    # In a fresh process: sockets other tests leave closing in the background
    # would make a count in this one unreliable.
    code = textwrap.dedent(
        f"""
        import os, threading
        from werkzeug.wrappers import Response
        from graywsgi.metrics.layer import Metrics

        def sockets():
            return sum(os.readlink(f"/proc/self/fd/{{fd}}").startswith("socket:")
                       for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{{fd}}"))

        before, threads = sockets(), threading.active_count()
        metrics = Metrics(Response("ok"), transport={transport!r}, port=9, host="127.0.0.1")
        print(sockets() - before, threading.active_count() - threads)
        metrics.sink.close()
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]


FORK_SCRIPT = textwrap.dedent(
    """
    import os, socket, sys, time
    from werkzeug.test import Client
    from werkzeug.wrappers import Response
    from graywsgi.metrics.layer import Metrics

    udp_port, tcp_port = int(sys.argv[1]), int(sys.argv[2])
    # built before the fork, like a gunicorn app with preload_app
    udp = Metrics(Response("ok"), port=udp_port, tag_style="dogstatsd", tags={"who": "parent"})
    tcp = Metrics(Response("ok"), transport="tcp", port=tcp_port, tag_style="dogstatsd")
    Client(udp).get("/", buffered=True)
    Client(tcp).get("/", buffered=True)
    udp.sink._lock.acquire()  # as if another thread were opening a socket right now
    pid = os.fork()
    if pid == 0:
        Client(udp).get("/child", buffered=True)  # would hang on the inherited, held lock
        Client(tcp).get("/child", buffered=True)
        time.sleep(0.5)  # let the child's own sender thread write
        os._exit(0)
    udp.sink._lock.release()
    os.waitpid(pid, 0)
    Client(udp).get("/again", buffered=True)
    Client(tcp).get("/again", buffered=True)
    time.sleep(0.5)
    """
)


def test_each_process_gets_its_own_socket_and_sender_after_fork(udp: UdpServer, tcp: StreamServer) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(udp.port), str(tcp.port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    first, parent_port = udp.datagram_from()
    second, child_port = udp.datagram_from()
    third, parent_port_again = udp.datagram_from()
    assert parent_port == parent_port_again
    assert child_port != parent_port, "the child must not send through the parent's socket"
    lines = tcp.wait_for(3)
    assert len(lines) == 3, "the child starts its own sender thread (threads do not survive fork)"
    assert len(tcp.connections) == 2, "one TCP connection per process"


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"tag_style": "graphite"}, "tag_style", id="unknown style"),
        pytest.param({"tag_style": 3}, "tag_style", id="style of the wrong type"),
        pytest.param({"prefix": "a:b"}, "prefix", id="prefix with a colon"),
        pytest.param({"prefix": "a..b"}, "prefix", id="prefix with an empty part"),
        pytest.param({"trace_sample_rate": 1.5}, "trace_sample_rate", id="rate above 1"),
        pytest.param({"trace_sample_rate": True}, "trace_sample_rate", id="rate as bool"),
        pytest.param({"transport": "http"}, "transport", id="unknown transport"),
        pytest.param({"transport": "unix"}, "socket_path", id="unix without a path"),
        pytest.param({"port": 0}, "port", id="port 0"),
        pytest.param({"tags": {"a:b": "x"}}, "tags", id="bad constant tag key"),
        pytest.param({"max_values": 0}, "max_values", id="max_values 0"),
        pytest.param({"sink": ListSink(), "timeout": 1}, "StatsdSink", id="sink options with a sink"),
    ],
)
def test_configuration_errors(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Metrics(Response("ok"), **options)


def test_missing_statsd_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "statsd" else real(name, *a))
    with pytest.raises(ConfigurationError, match="graywsgi\\[metrics\\]"):
        Metrics(Response("ok"))


def test_listener_needs_metrics() -> None:
    with pytest.raises(ConfigurationError):
        MetricsListener(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="listeners"):
        Metrics(Response("ok"), sink=ListSink(), listeners=[object()])  # type: ignore[list-item]
    unbound = MetricsListener()
    unbound.on_rollback("nothing to send to yet")  # dropped, never raises
    unbound.on_trip("canary", None, "x")  # type: ignore[arg-type]


def test_custom_tag_style(build: t.Callable[..., Metrics], udp: UdpServer) -> None:
    class Brackets(TagStyle):
        def fragment(self, tags: t.Sequence[tuple[str, str]]) -> str:
            return "[" + ";".join(f"{k}={v}" for k, v in tags) + "]"

        def line(self, name: str, value: str, fragment: str) -> str:
            return f"{name}{fragment}:{value}"

    BufferedClient(build(Response("ok"), tag_style=Brackets(), trace_sample_rate=0)).get("/")
    assert_lines(udp.datagram(), "graywsgi.request[route=none;group=none;version=none;status=2xx;method=GET]:{ms}|ms")
    assert isinstance(PlainStyle(), TagStyle)


def test_bench_case_file_runs() -> None:
    result = subprocess.run(
        [sys.executable, "bench/metrics.py", "--quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["clock"] == "cpu"
    assert "split chain, metrics off" in report["cases"]
    assert all(row["ratio"] > 0 for row in report["ratios"].values())
