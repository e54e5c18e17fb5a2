"""graywsgi behind real servers on 127.0.0.1: a threaded werkzeug server."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.serving import make_server

from graywsgi import CanarySplit, Extraction, current
from graywsgi.core.hashing import fnv1a_32

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    def body() -> t.Iterator[bytes]:
        # streamed: read the context again while the server iterates
        yield json.dumps(
            {"gray_id": current.gray_id, "request_id": current.request_id, "route": current.route}
        ).encode()

    start_response("200 OK", [("Content-Type", "application/json")])
    return body()


@pytest.fixture
def server_port() -> t.Iterator[int]:
    server = make_server("127.0.0.1", 0, Extraction(CanarySplit(echo_app, percent=30)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_concurrent_requests_over_http_see_only_their_own_context(server_port: int) -> None:
    def one(n: int) -> tuple[int, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
        try:
            conn.request("GET", "/", headers={"X-Gray-ID": f"user-{n}", "X-Request-ID": f"req-{n}"})
            response = conn.getresponse()
            assert response.status == 200
            return n, json.loads(response.read())
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(400)))
    for n, body in results:
        assert body["gray_id"] == f"user-{n}"
        assert body["request_id"] == f"req-{n}"
        expected = "canary" if fnv1a_32(f"user-{n}") % 100 < 30 else "stable"
        assert body["route"] == expected


def test_malformed_header_over_http_is_served(server_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
    try:
        conn.putrequest("GET", "/?gray_id=%zz")
        conn.putheader("X-Gray-ID", b"\xff\xfe\x01bad")
        conn.putheader("X-Env", "x" * 5000)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 200
        body = json.loads(response.read())
        assert body["gray_id"] is None and body["route"] == "stable"
        assert body["request_id"].startswith("fallback-")
    finally:
        conn.close()


def test_import_starts_no_threads_and_opens_no_sockets() -> None:
    code = (
        "import os, threading\n"
        "before = set(os.listdir('/proc/self/fd'))\n"
        "import graywsgi, graywsgi.layers.extraction, graywsgi.layers.split, graywsgi.cli.demo, graywsgi.cli.commands\n"
        "from graywsgi import Extraction, CanarySplit\n"
        "CanarySplit(Extraction(lambda e, s: []), percent=5)\n"
        "after = set(os.listdir('/proc/self/fd'))\n"
        "sockets = [fd for fd in after - before if os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')]\n"
        "print(threading.active_count(), len(sockets))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "0"]
