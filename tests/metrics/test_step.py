"""Metrics' step (graywsgi/metrics/step.py): the usual request's datagram is
made once per route and carries the same bytes as the lines built one by one;
the connected UDP socket's failures are counted, never raised.

The wire formats themselves are tested in tests/metrics/test_tags.py and tests/metrics/test_lines.py.
"""

from __future__ import annotations

import re
import socket
import typing as t

import pytest
from werkzeug.test import Client

from graywsgi import CanarySplit, Extraction, Metrics, Router
from graywsgi.rules.files import parse_rules
from graywsgi.metrics.layer import StatsdSink, TagStyle
from tests.conftest import RecordingApp
from tests.gunicorn_helpers import free_port
from tests.metrics.helpers import UdpServer, failing_app, failing_body

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

RULES = """
version: 1
id: step-test
clusters:
  stable: {group: control}
  canary: {group: treatment}
rules:
  - name: checkout
    match: {path: {prefix: /checkout}}
    split: [{cluster: canary, weight: 50}]
  - name: everyone-canary
    match: {path: {prefix: /beta}}
    split: [{cluster: canary, weight: 100}]
no_match: default
"""

TIMER = re.compile(rb":(\d+\.\d{3})\|ms")


class ListSink(StatsdSink):
    """Keeps each send's lines instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[str]] = []

    def send(self, lines: t.Sequence[str]) -> None:
        self.sent.append(list(lines))


class Brackets(TagStyle):
    def fragment(self, tags: t.Sequence[tuple[str, str]]) -> str:
        return "[" + ";".join(f"{k}={v}" for k, v in tags) + "]"

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}{fragment}:{value}"


STYLES: dict[str, dict[str, t.Any]] = {
    "statsd": {"tag_style": "statsd"},
    "dogstatsd": {"tag_style": "dogstatsd"},
    "influx": {"tag_style": "influx"},
    "dogstatsd, prefix and constant tags": {
        "tag_style": "dogstatsd",
        "prefix": "shop.gray",
        "tags": {"service": "checkout", "zone": "eu-1"},
    },
    "influx, prefix": {"tag_style": "influx", "prefix": "edge"},
    "custom style": {"tag_style": Brackets()},
}

#: (method, path, headers, status the app answers, app kind)
REQUESTS: list[tuple[str, str, dict[str, str], int, str]] = [
    ("GET", "/", {}, 200, "ok"),
    ("GET", "/checkout/pay", {"X-Gray-ID": "user-1"}, 200, "ok"),
    ("POST", "/checkout/pay", {"X-Gray-ID": "user-2", "X-Version": "1.5.0"}, 201, "ok"),
    ("GET", "/checkout/pay", {"X-Gray-ID": "user-3", "X-Version": "odd value/2"}, 302, "ok"),
    ("DELETE", "/beta/x", {"X-Gray-ID": "user-4"}, 404, "ok"),
    ("BREW", "/beta/x", {"X-Traffic-Color": "canary"}, 503, "ok"),
    ("PATCH", "/", {"X-Traffic-Color": "stable", "X-Version": "2"}, 200, "ok"),
    ("GET", "/beta/x", {"X-Gray-ID": "user-5"}, 500, "raises"),
    ("GET", "/checkout/x", {"X-Gray-ID": "user-6"}, 200, "body raises"),
    ("HEAD", "/other", {"X-Gray-ID": "user-7"}, 204, "ok"),
]


def _chain(kind: str, status: int) -> WSGIApplication:
    app: WSGIApplication
    if kind == "raises":
        app = failing_app
    elif kind == "body raises":
        app = failing_body
    else:
        app = RecordingApp(status=status)
    return Extraction(Router(app, parse_rules(RULES, filename="rules.yaml")))


def _serve(metrics: Metrics, method: str, path: str, headers: dict[str, str], kind: str) -> WSGIEnvironment:
    """One request through ``metrics``; the outermost environ it saw."""
    seen: list[WSGIEnvironment] = []

    def outer(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(environ)
        return metrics(environ, start_response)

    client = Client(outer)
    if kind == "ok":
        client.open(path, method=method, headers=headers, buffered=True).close()
    else:
        with pytest.raises(RuntimeError):
            client.open(path, method=method, headers=headers, buffered=True)
    return seen[0]


def _status_of(environ: WSGIEnvironment, kind: str, status: int) -> tuple[int | None, bool]:
    if kind == "raises":
        return None, True
    if kind == "body raises":
        return 200, True
    return status, False


@pytest.mark.parametrize("style", list(STYLES))
def test_usual_datagram_has_the_bytes_the_lines_would_have(style: str) -> None:
    for method, path, headers, status, kind in REQUESTS:
        sink = ListSink()
        metrics = Metrics(_chain(kind, status), sink=sink, trace_sample_rate=0, **STYLES[style])
        environ = _serve(metrics, method, path, headers, kind)
        assert len(sink.sent) == 1, (method, path)
        fast = "\n".join(sink.sent[0]).encode("ascii")
        assert metrics._step.datagrams, "the usual request did not take the preformatted datagram"
        timer = TIMER.search(fast)
        assert timer is not None, fast
        elapsed_ms = float(timer.group(1))
        code, raised = _status_of(environ, kind, status)
        metrics.send_lines(environ, [], elapsed_ms, code, raised, False)
        built = "\n".join(sink.sent[1]).encode("ascii")
        assert fast == built, (method, path, headers)


def test_datagrams_are_made_once_per_combination_and_bounded() -> None:
    sink = ListSink()
    metrics = Metrics(_chain("ok", 200), sink=sink, tag_style="dogstatsd", trace_sample_rate=0)
    client = Client(metrics)
    for _ in range(3):
        client.get("/checkout/pay", headers={"X-Gray-ID": "user-1"}).close()
    assert len(metrics._step.datagrams) == 1
    first = sink.sent[0]
    assert [line.split(":", 1)[1] for line in sink.sent[2][1:]] == [line.split(":", 1)[1] for line in first[1:]]
    for n in range(metrics._CACHE_LIMIT + 50):
        client.get("/checkout/pay", headers={"X-Gray-ID": "user-1", "X-Version": f"v{n}"}).close()
    assert len(metrics._step.datagrams) <= metrics._CACHE_LIMIT
    # beyond the bound every request is still sent
    assert len(sink.sent) == 3 + metrics._CACHE_LIMIT + 50


def test_sampled_and_degraded_requests_take_the_built_lines() -> None:
    sink = ListSink()
    metrics = Metrics(
        Extraction(CanarySplit(RecordingApp(), percent=15)), sink=sink, tag_style="dogstatsd", trace_sample_rate=1.0
    )
    client = Client(metrics)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.get("/", headers={"traceparent": trace}).close()
    assert "trace_id:4bf92f3577b34da6a3ce929d0e0e4736" in sink.sent[0][0]
    client.get("/", headers={"X-Gray-ID": "bad\x01id"}).close()
    assert any(line.startswith("graywsgi.extraction.degraded") for line in sink.sent[1]), sink.sent[1]
    assert not metrics._step.datagrams, "neither request is a usual one"


# -- the connected UDP socket ------------------------------------------------------


def test_refused_peer_is_counted_and_reported_when_it_is_back() -> None:
    """The socket is connected, so a closed port comes back as
    ECONNREFUSED on a later send: counted as a ``send`` failure and reported
    as dropped lines once a statsd server listens again; no request fails."""
    port = free_port()
    metrics = Metrics(Extraction(RecordingApp()), port=port, tag_style="dogstatsd", trace_sample_rate=0)
    try:
        client = Client(metrics)
        for _ in range(20):
            response = client.get("/")
            assert response.status_code == 200
            response.close()
        health = metrics.health()
        # Each refusal clears the socket's error, so about every other send fails.
        assert health["send"] >= 5, health
        assert health["lines_dropped"] == health["send"]
        # A report that left the socket counts as reported (UDP cannot know
        # more); what failed since the last one is still to be reported.
        pending = metrics.sink._health.unreported
        assert 0 <= pending <= health["lines_dropped"]
        server = UdpServer.__new__(UdpServer)
        server.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.sock.bind(("127.0.0.1", port))
        server.sock.settimeout(2.0)
        server.port = port
        try:
            client.get("/").close()
            lines = server.datagram().split("\n")
            if pending:
                assert lines[-1] == f"graywsgi.metrics.dropped:{pending}|c", lines
            else:
                assert not any("metrics.dropped" in line for line in lines), lines
            assert lines[0].startswith("graywsgi.request:"), lines
            assert metrics.sink._health.unreported == 0
        finally:
            server.sock.close()
    finally:
        metrics.sink.close()


def test_a_raising_socket_never_reaches_the_request() -> None:
    server = UdpServer()
    metrics = Metrics(Extraction(RecordingApp()), port=server.port, tag_style="dogstatsd", trace_sample_rate=0)
    try:
        client = Client(metrics)
        client.get("/").close()
        server.datagram()
        real = metrics.sink._udp
        assert real is not None

        class Broken:
            def sendto(self, data: bytes, address: t.Any) -> int:
                raise ValueError("a bug in a socket stand-in")

        metrics.sink._udp = real._replace(sock=Broken())  # type: ignore[arg-type]
        for _ in range(5):
            response = client.get("/")
            assert response.status_code == 200
            response.close()  # the datagram is sent when the response is closed
        assert metrics.health() == {"send": 5, "lines_dropped": 5}
    finally:
        metrics.sink.close()
        server.sock.close()


def _times() -> list[float]:
    """Times a request takes, and the awkward ones: ties between two
    thousandths, values on either side of them, the formatter's own range's
    edges (1e9 ms) and beyond it, zero, and what only a broken clock gives."""
    import random

    draw = random.Random(20261207)
    times = [draw.uniform(0, 5) for _ in range(2_000)] + [draw.uniform(0, 5e9) for _ in range(500)]
    times += [draw.expovariate(0.01) for _ in range(500)]
    for thousandths in [0, 1, 5, 999, 1_000, 1_234, 99_999, 10**11, 10**12 - 1]:
        for offset in [-0.5005, -0.5, -0.4995, -0.0001, 0.0, 0.0001, 0.4995, 0.5, 0.5005]:
            times.append((thousandths + offset) / 1000)
    times += [0.0005, 0.0015, 2.5, 1e9, 1e9 - 0.0005, 1e15, -0.0, -0.001, -3.7, float("inf"), float("nan")]
    return times


def test_timed_datagram_writes_the_time_as_percent_3f_does() -> None:
    """The datagram's time is ``b"%.3f" % ms`` for every time, on both paths
    (compiled, most are written without the float formatter)."""
    from graywsgi.metrics.step import timed_datagram

    head, tail = b"graywsgi.request:", b"|ms|#route:canary"
    for milliseconds in _times():
        assert timed_datagram(head, milliseconds, tail) == head + b"%.3f" % milliseconds + tail, milliseconds
