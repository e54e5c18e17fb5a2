"""Metrics under real gunicorn workers forked from a preloaded app."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import time
import typing as t

import pytest

from graywsgi import CanarySplit, Extraction
from graywsgi.metrics.layer import Metrics
from tests.gunicorn_helpers import Gunicorn

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def slow_hello(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    time.sleep(0.05)  # keeps a worker busy, so the other one takes the next request
    body = json.dumps({"pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# Built at import: in the gunicorn master with --preload, before the fork. It
# must not open anything there (the test process imports it too).
application = Metrics(
    Extraction(CanarySplit(slow_hello, percent=50)),
    port=int(os.environ.get("GRAYWSGI_TEST_STATSD_PORT", "8125")),
    tag_style="dogstatsd",
    trace_sample_rate=0,
)


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_each_worker_sends_through_its_own_socket(worker_class: str) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    server = Gunicorn(
        "tests.metrics.test_layer_gunicorn:application",
        workers=2,
        worker_class=worker_class,
        env={"GRAYWSGI_TEST_STATSD_PORT": str(receiver.getsockname()[1])},
        extra=["--preload", *(["--threads", "4"] if worker_class == "gthread" else [])],
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda n: server.get("/", {"X-Gray-ID": f"user-{n}"}), range(60)))
    finally:
        server.stop()
    assert all(status == 200 for status, _ in answers)
    workers = {body["pid"] for _, body in answers}
    # the readiness probe of Gunicorn() is a request too
    datagrams = [receiver.recvfrom(65535) for _ in range(len(answers) + 1)]
    receiver.close()
    ports = {address[1] for _, address in datagrams}
    assert len(workers) == 2, "both workers served requests"
    senders = {address: data[:60] for data, address in datagrams}  # one sample datagram per source
    # Once (2026-12-02) a datagram came from port 0: the message shows each source, to tell why next time.
    assert len(ports) == len(workers), f"one socket per worker, none shared with the master; sources: {senders}"
    lines = [data.decode().split("\n")[0] for data, _ in datagrams]
    assert all(line.startswith("graywsgi.request:") and "status:2xx,method:GET" in line for line in lines)
