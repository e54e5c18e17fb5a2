"""StatsdSink (graywsgi/metrics/statsd.py): datagram size, UDP/TCP/Unix transports, failures that never hurt a request, fork awareness."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction
from graywsgi.errors import ConfigurationError
from graywsgi.layers.events import note
from graywsgi.metrics.layer import Metrics
from graywsgi.metrics.statsd import StatsdSink
from graywsgi.metrics.tags import DogStatsdStyle
from tests.conftest import BufferedClient, RecordingApp
from tests.gunicorn_helpers import free_port
from tests.metrics.helpers import GRAY, ROOT, StreamServer, UdpServer, assert_lines, split_chain

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


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


def test_missing_statsd_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "statsd" else real(name, *a))
    with pytest.raises(ConfigurationError, match="graywsgi\\[metrics\\]"):
        Metrics(Response("ok"))
