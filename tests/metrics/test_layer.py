"""Metrics (graywsgi/metrics/layer.py) end to end against real statsd sockets on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.errors import ConfigurationError
from graywsgi.layers.guard import Guard
from graywsgi.metrics.layer import Metrics, MetricsListener
from graywsgi.metrics.statsd import StatsdSink
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from tests.conftest import BufferedClient, RecordingApp
from tests.metrics.helpers import ROOT, TRACEPARENT, StreamServer, UdpServer, split_chain

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


# -- timing ------------------------------------------------------------------------------


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


# -- trace sampling ----------------------------------------------------------------------


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


def test_listener_needs_metrics() -> None:
    with pytest.raises(ConfigurationError):
        MetricsListener(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="listeners"):
        Metrics(Response("ok"), sink=ListSink(), listeners=[object()])  # type: ignore[list-item]
    unbound = MetricsListener()
    unbound.on_rollback("nothing to send to yet")  # dropped, never raises
    unbound.on_trip("canary", None, "x")  # type: ignore[arg-type]


def test_bench_case_file_runs() -> None:
    result = subprocess.run(
        [sys.executable, "bench/metrics.py", "--quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["clock"] == "cpu"
    assert "split chain, metrics off" in report["cases"]
    assert all(row["ratio"] > 0 for row in report["ratios"].values())
