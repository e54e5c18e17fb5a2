"""UpstreamProxy against real servers on 127.0.0.1.

Every upstream is a real werkzeug server in a daemon thread; most tests call
the proxy through a second real werkzeug server with ``http.client``, so
chunked requests and streamed responses cross real sockets. Tests that need
a hand-made environ (no ``RAW_URI``, a short body) call the proxy directly.

werkzeug's development server always answers ``Connection: close``, so the
upstreams use :class:`KeepAliveHandler`: werkzeug's handler and environ with
an HTTP/1.1 keep-alive response writer, so pooling can be observed.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import typing as t
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import Client, TestResponse, create_environ, run_wsgi_app
from werkzeug.wsgi import LimitedStream, get_input_stream

from graywsgi.errors import PROBLEM_CONTENT_TYPE, ConfigurationError
from graywsgi.httputil.proxy import ENVIRON_KEY, UpstreamProxy

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


# -- servers ------------------------------------------------------------------


class TrackedHandler(WSGIRequestHandler):
    """werkzeug's handler, remembering its thread so teardown can join it."""

    def setup(self) -> None:
        getattr(self.server, "handler_threads").append(threading.current_thread())
        super().setup()


class KeepAliveHandler(TrackedHandler):
    """werkzeug's request handler, answering with HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle connection nobody closes still ends
    disable_nagle_algorithm = True  # headers and body are separate writes

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        if not environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = LimitedStream(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))
        started: list[t.Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Any:
            started[:] = [status, headers]
            return None

        headers_sent = False
        try:
            app_iter = self.server.app(environ, start_response)
            try:
                status, headers = started
                code = int(status.split(" ", 1)[0])
                self.send_response(code, status.partition(" ")[2])
                names = {name.lower() for name, _ in headers}
                for name, value in headers:
                    self.send_header(name, value)
                chunked = not (
                    "content-length" in names or environ["REQUEST_METHOD"] == "HEAD" or code in (204, 304)
                )
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                headers_sent = True
                for data in app_iter:
                    if data and environ["REQUEST_METHOD"] != "HEAD":
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                        self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            finally:
                getattr(app_iter, "close", lambda: None)()
            stream = environ["wsgi.input"]
            while stream.read(65536):  # the next request starts after this body
                pass
        except Exception:
            self.close_connection = True
            if not headers_sent:
                self.send_error(500)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class IdleTimeoutHandler(KeepAliveHandler):
    """Closes a keep-alive connection after 0.3 s without a request."""

    timeout = 0.3


class DropSecondRequestHandler(KeepAliveHandler):
    """Answers the first request of a connection, then reads the next one
    and closes the connection without answering: a connection that went
    stale just as the proxy reused it."""

    served = False

    def run_wsgi(self) -> None:
        if self.served:
            self.close_connection = True
            return
        self.served = True
        super().run_wsgi()


class Server:
    """A real werkzeug server on 127.0.0.1, served from a daemon thread."""

    def __init__(
        self,
        app: WSGIApplication,
        handler: type[WSGIRequestHandler] = KeepAliveHandler,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=handler, ssl_context=ssl_context
        )
        self.handler_threads: list[threading.Thread] = []
        setattr(self.server, "handler_threads", self.handler_threads)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        scheme = "https" if self.server.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def stop_listening(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def join_handlers(self, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        for thread in list(self.handler_threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


class Harness:
    """Servers and proxies of one test, stopped and closed in a safe order.

    A front server closes a response -- returning its upstream connection
    to the pool -- a moment after the client has it, and an upstream
    handler waits on a pooled keep-alive connection until the proxy closes
    it; so: stop listening, let the fronts finish, close the proxies, let
    the upstreams finish, close the proxies again.
    """

    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.proxies: list[UpstreamProxy] = []

    def serve(self, app: WSGIApplication, **kwargs: t.Any) -> Server:
        server = Server(app, **kwargs)
        self.servers.append(server)
        return server

    def proxy(self, base_url: str, **kwargs: t.Any) -> UpstreamProxy:
        kwargs.setdefault("timeout", 10.0)
        proxy = UpstreamProxy(base_url, **kwargs)
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        for server in self.servers:
            server.stop_listening()
        for server in self.servers:
            if isinstance(server.app, UpstreamProxy):
                server.join_handlers()
        for proxy in self.proxies:
            proxy.close()
        for server in self.servers:
            server.join_handlers()
        for proxy in self.proxies:
            proxy.close()


class EchoApp:
    """Answers with a JSON description of the request it received."""

    def __init__(self) -> None:
        self.ports: list[int] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        self.ports.append(environ["REMOTE_PORT"])
        digest = hashlib.sha256()
        size = 0
        stream = get_input_stream(environ)
        while chunk := stream.read(65536):
            digest.update(chunk)
            size += len(chunk)
        document = {
            "method": environ["REQUEST_METHOD"],
            "raw_uri": environ["RAW_URI"],
            "path_info": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "headers": {
                key[5:].replace("_", "-").title(): value
                for key, value in environ.items()
                if key.startswith("HTTP_")
            },
            "content_type": environ.get("CONTENT_TYPE"),
            "content_length": environ.get("CONTENT_LENGTH"),
            "size": size,
            "sha256": digest.hexdigest(),
            "port": environ["REMOTE_PORT"],
        }
        body = json.dumps(document).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    @property
    def connections(self) -> int:
        return len(set(self.ports))


@pytest.fixture
def harness() -> t.Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


@pytest.fixture
def start_server(harness: Harness) -> t.Callable[..., Server]:
    return harness.serve


@pytest.fixture
def make_proxy(harness: Harness) -> t.Callable[..., UpstreamProxy]:
    return harness.proxy


@pytest.fixture
def echo() -> EchoApp:
    return EchoApp()


@pytest.fixture
def upstream(start_server: t.Callable[..., Server], echo: EchoApp) -> Server:
    return start_server(echo)


@pytest.fixture
def front(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], upstream: Server
) -> Server:
    """A plain werkzeug server whose application is a proxy to ``upstream``."""
    return start_server(make_proxy(upstream.url, name="canary"), handler=TrackedHandler)


def fetch(
    server: Server,
    method: str,
    target: str,
    body: t.Any = None,
    headers: t.Mapping[str, str] | None = None,
    **kwargs: t.Any,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request with http.client; the response and its whole body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}), **kwargs)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def call(proxy: UpstreamProxy, path: str = "/", **kwargs: t.Any) -> TestResponse:
    """Call the proxy in process; the response iterable is read and closed."""
    return Client(proxy).open(path, buffered=True, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def proxy_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "graywsgi.proxy" and r.levelno == logging.WARNING]


# -- what goes upstream -------------------------------------------------------


@pytest.mark.parametrize(
    "method, body",
    [
        pytest.param("GET", None, id="GET"),
        pytest.param("POST", b'{"a": 1}', id="POST with body"),
        pytest.param("PUT", b"replace me", id="PUT with body"),
        pytest.param("DELETE", None, id="DELETE"),
    ],
)
def test_method_path_query_and_headers_pass_through(front: Server, method: str, body: bytes | None) -> None:
    target = "/items/a%2Fb/caf%C3%A9/%FF;v=1?x=1&y=%20z&e=%C3%A9&flag"
    headers = {"X-Custom": "value 1", "Accept": "application/json", "X-Gray-ID": "user-7"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    response, data = fetch(front, method, target, body=body, headers=headers)
    assert response.status == 200
    seen = json.loads(data)
    assert seen["method"] == method
    # The exact request target went upstream, though the front server's
    # PATH_INFO is "/items/a/b/caf\xc3\xa9/\xef\xbf\xbd;v=1" (werkzeug decodes
    # %2F and puts U+FFFD for %FF).
    assert seen["raw_uri"] == target
    assert seen["query"] == "x=1&y=%20z&e=%C3%A9&flag"
    assert seen["headers"]["X-Custom"] == "value 1"
    assert seen["headers"]["Accept"] == "application/json"
    assert seen["headers"]["X-Gray-Id"] == "user-7"
    if body is None:
        assert seen["size"] == 0
    else:
        assert seen["content_type"] == "application/json"
        assert seen["content_length"] == str(len(body))
        assert seen["sha256"] == hashlib.sha256(body).hexdigest()


def test_base_url_prefix_and_script_name_lead_the_path(
    upstream: Server, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    proxy = make_proxy(upstream.url + "/base/")
    environ = create_environ("/mount/users/7?q=1")
    environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/mount", "/users/7"
    app_iter, status, _ = run_wsgi_app(proxy, environ, buffered=True)
    assert status == "200 OK"
    assert json.loads(b"".join(app_iter))["raw_uri"] == "/base/mount/users/7?q=1"
    assert json.loads(call(proxy, "").data)["raw_uri"] == "/base"


@pytest.mark.parametrize(
    "script_name, path_info, raw_uri, sent",
    [
        pytest.param("", "/caf\xc3\xa9/\xff", None, "/caf%C3%A9/%FF", id="non-ASCII bytes re-quoted"),
        pytest.param("", "/100%/a b?c#d", None, "/100%25/a%20b%3Fc%23d", id="reserved characters quoted"),
        pytest.param("/m", "/x;p=1/@:!$&'()*+,=~", None, "/m/x;p=1/@:!$&'()*+,=~", id="sub-delims kept"),
        pytest.param("", "/a/b", "/a%2Fb", "/a%2Fb", id="raw URI keeps %2F"),
        pytest.param("", "/new/x", "/old/x", "/new/x", id="raw URI of a rewritten path ignored"),
        pytest.param("", "/a/\xef\xbf\xbd", "/a%2F%FF", "/a%2F%FF", id="raw URI kept when PATH_INFO has U+FFFD"),
        pytest.param("", "/caf\xc3\xa9", "/caf\xc3\xa9", "/caf%C3%A9", id="raw non-ASCII bytes quoted"),
    ],
)
def test_path_from_raw_uri_or_requoted_path_info(
    upstream: Server,
    make_proxy: t.Callable[..., UpstreamProxy],
    script_name: str,
    path_info: str,
    raw_uri: str | None,
    sent: str,
) -> None:
    proxy = make_proxy(upstream.url)
    environ = create_environ("/")
    for key in ("RAW_URI", "REQUEST_URI"):
        environ.pop(key, None)
    if raw_uri is not None:
        environ["RAW_URI"] = raw_uri
    environ["SCRIPT_NAME"], environ["PATH_INFO"] = script_name, path_info
    app_iter, status, _ = run_wsgi_app(proxy, environ, buffered=True)
    assert status == "200 OK"
    assert json.loads(b"".join(app_iter))["raw_uri"] == sent


def test_hop_by_hop_request_headers_are_dropped(front: Server) -> None:
    hop = {
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "only for the first hop",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "Proxy-Connection": "keep-alive",
        "TE": "trailers",
        "Trailer": "X-Checksum",
        "Upgrade": "h2c",
        "Expect": "100-continue",
    }
    response, data = fetch(front, "POST", "/", body=b"body", headers={**hop, "X-Kept": "yes"})
    assert response.status == 200
    seen = json.loads(data)["headers"]
    assert seen["X-Kept"] == "yes"
    for name in hop:
        assert name.title() not in seen, name
    assert "Transfer-Encoding" not in seen


def test_hop_by_hop_response_headers_are_dropped(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response(
            "201 Created",
            [
                ("Content-Length", "2"),
                ("Connection", "X-Resp-Hop"),
                ("X-Resp-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("X-Kept", "yes"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ],
        )
        return [b"ok"]

    upstream = start_server(app)
    front = start_server(make_proxy(upstream.url), handler=TrackedHandler)
    response, data = fetch(front, "GET", "/")
    assert (response.status, response.reason, data) == (201, "Created", b"ok")
    assert response.getheader("X-Kept") == "yes"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    for name in ("X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
        assert response.getheader(name) is None, name
    assert response.headers.get_all("Connection") == ["close"]  # the front server's own
    dates = response.headers.get_all("Date")
    assert dates is not None and len(dates) == 1 and "1970" not in dates[0]


def test_forwarded_headers_and_host_rewrite(front: Server, upstream: Server) -> None:
    response, data = fetch(
        front,
        "GET",
        "/",
        headers={
            "Host": "gray.example:8443",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert response.status == 200
    seen = json.loads(data)["headers"]
    assert seen["Host"] == f"127.0.0.1:{upstream.port}"
    assert seen["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == "gray.example:8443"


def test_forwarded_for_without_a_previous_hop(front: Server) -> None:
    seen = json.loads(fetch(front, "GET", "/")[1])["headers"]
    assert seen["X-Forwarded-For"] == "127.0.0.1"


def test_preserve_host_sends_the_clients_host(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], upstream: Server
) -> None:
    front = start_server(make_proxy(upstream.url, preserve_host=True), handler=TrackedHandler)
    seen = json.loads(fetch(front, "GET", "/", headers={"Host": "gray.example"})[1])["headers"]
    assert seen["Host"] == "gray.example"
    assert seen["X-Forwarded-Host"] == "gray.example"


def test_environ_names_the_upstream(upstream: Server, make_proxy: t.Callable[..., UpstreamProxy]) -> None:
    for proxy, expected in (
        (make_proxy(upstream.url, name="canary"), "canary"),
        (make_proxy(upstream.url + "/v2"), upstream.url + "/v2"),
    ):
        environ = create_environ("/")
        body = proxy(environ, lambda status, headers, exc_info=None: lambda data: None)
        b"".join(body)
        getattr(body, "close")()
        assert environ[ENVIRON_KEY] == expected


# -- bodies ---------------------------------------------------------------------


def test_large_request_body_with_content_length_arrives_intact(front: Server) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    response, data = fetch(
        front, "PUT", "/upload", body=payload, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status == 200
    seen = json.loads(data)
    assert seen["content_length"] == str(len(payload))
    assert (seen["size"], seen["sha256"]) == (len(payload), hashlib.sha256(payload).hexdigest())


def test_chunked_request_body_is_streamed_upstream_chunked(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    first = os.urandom(256 * 1024)
    rest = os.urandom(3 * 1024 * 1024 + 17)
    first_arrived = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        digest = hashlib.sha256()
        size = 0
        stream = get_input_stream(environ)
        while chunk := stream.read(65536):
            digest.update(chunk)
            size += len(chunk)
            if size >= len(first):
                first_arrived.set()
        body = json.dumps(
            {"te": environ.get("HTTP_TRANSFER_ENCODING"), "size": size, "sha256": digest.hexdigest()}
        ).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    def body() -> t.Iterator[bytes]:
        yield first
        # The upstream has the first part before the client sends the rest:
        # the proxy forwards as it reads.
        if not first_arrived.wait(10):
            raise AssertionError("the first part of the body did not reach the upstream")
        for start in range(0, len(rest), 100_000):
            yield rest[start : start + 100_000]

    upstream = start_server(app)
    front = start_server(make_proxy(upstream.url), handler=TrackedHandler)
    response, data = fetch(front, "POST", "/stream", body=body(), encode_chunked=True)
    assert response.status == 200
    seen = json.loads(data)
    assert seen["te"] == "chunked"
    assert (seen["size"], seen["sha256"]) == (
        len(first) + len(rest),
        hashlib.sha256(first + rest).hexdigest(),
    )


@pytest.mark.parametrize("with_length", [pytest.param(True, id="Content-Length"), pytest.param(False, id="chunked")])
def test_large_response_is_streamed_back(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], with_length: bool
) -> None:
    first = os.urandom(512 * 1024)
    rest = os.urandom(5 * 1024 * 1024 + 3)
    first_read = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        headers = [("Content-Type", "application/octet-stream")]
        if with_length:
            headers.append(("Content-Length", str(len(first) + len(rest))))
        start_response("200 OK", headers)

        def body() -> t.Iterator[bytes]:
            yield first
            # The client reads the first part while the upstream still
            # holds the rest: the proxy passes pieces on as they arrive.
            if not first_read.wait(10):
                return
            for start in range(0, len(rest), 1_000_000):
                yield rest[start : start + 1_000_000]

        return body()

    upstream = start_server(app)
    front = start_server(make_proxy(upstream.url), handler=TrackedHandler)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
    try:
        conn.request("GET", "/download")
        response = conn.getresponse()
        assert response.status == 200
        head = response.read(len(first))
        first_read.set()
        tail = response.read()
    finally:
        first_read.set()
        conn.close()
    assert head == first
    assert hashlib.sha256(tail).hexdigest() == hashlib.sha256(rest).hexdigest()


def test_head_and_no_content_responses(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], echo: EchoApp
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["PATH_INFO"] == "/empty":
            start_response("204 No Content", [])
            return []
        return echo(environ, start_response)

    proxy = make_proxy(start_server(app).url)
    head = call(proxy, "/", method="HEAD")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) > 0
    empty = call(proxy, "/empty")
    assert empty.status_code == 204 and empty.data == b""
    call(proxy, "/")
    assert echo.connections == 1  # HEAD and 204 gave their connection back


# -- connections ----------------------------------------------------------------


def test_sequential_requests_reuse_connections(
    front: Server, echo: EchoApp, upstream: Server, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    for n in range(20):
        response, data = fetch(front, "GET", f"/n/{n}")
        assert response.status == 200 and json.loads(data)["raw_uri"] == f"/n/{n}"
    # The front server closes the response (returning the connection) a
    # moment after the client has it, so the next request can overtake the
    # return and open a second connection; it never needs many.
    assert echo.connections <= 4

    echo.ports.clear()
    proxy = make_proxy(upstream.url)
    for n in range(20):
        assert call(proxy, f"/direct/{n}").status_code == 200
    assert echo.connections == 1


def test_max_idle_zero_pools_nothing(
    upstream: Server, echo: EchoApp, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    proxy = make_proxy(upstream.url, max_idle=0)
    for _ in range(5):
        assert call(proxy).status_code == 200
    assert echo.connections == 5


def test_close_drops_idle_connections(
    upstream: Server, echo: EchoApp, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    proxy = make_proxy(upstream.url)
    call(proxy)
    call(proxy)
    proxy.close()
    call(proxy)
    assert echo.connections == 2


def test_abandoned_response_closes_its_connection(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], echo: EchoApp
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["PATH_INFO"] == "/big":
            echo.ports.append(environ["REMOTE_PORT"])
            start_response("200 OK", [("Content-Length", str(4 * 1024 * 1024))])
            return [b"x" * (4 * 1024 * 1024)]
        return echo(environ, start_response)

    proxy = make_proxy(start_server(app).url)
    body = proxy(create_environ("/big"), lambda status, headers, exc_info=None: lambda data: None)
    first = next(iter(body))
    assert first
    getattr(body, "close")()  # the client went away mid-stream
    call(proxy, "/")
    assert echo.connections == 2


def test_connection_closed_by_idle_upstream_is_replaced(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy], echo: EchoApp
) -> None:
    upstream = start_server(echo, handler=IdleTimeoutHandler)
    proxy = make_proxy(upstream.url)
    assert call(proxy).status_code == 200
    time.sleep(0.8)  # the upstream closes the idle pooled connection
    assert call(proxy).status_code == 200
    assert echo.connections == 2


@pytest.mark.parametrize(
    "method, data",
    [
        pytest.param("GET", None, id="GET"),
        pytest.param("DELETE", None, id="DELETE"),
        pytest.param("POST", None, id="POST without body"),
    ],
)
def test_stale_pooled_connection_is_retried_once(
    start_server: t.Callable[..., Server],
    make_proxy: t.Callable[..., UpstreamProxy],
    echo: EchoApp,
    caplog: pytest.LogCaptureFixture,
    method: str,
    data: bytes | None,
) -> None:
    caplog.set_level(logging.DEBUG, logger="graywsgi.proxy")
    proxy = make_proxy(start_server(echo, handler=DropSecondRequestHandler).url)
    assert call(proxy, "/first").status_code == 200
    response = call(proxy, "/second", method=method, data=data)
    assert response.status_code == 200
    assert json.loads(response.data)["method"] == method
    assert echo.connections == 2
    assert not proxy_warnings(caplog)
    assert any("stale" in r.getMessage() for r in caplog.records if r.name == "graywsgi.proxy")


def test_stale_connection_is_not_retried_for_a_post_with_a_body(
    start_server: t.Callable[..., Server],
    make_proxy: t.Callable[..., UpstreamProxy],
    echo: EchoApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = make_proxy(start_server(echo, handler=DropSecondRequestHandler).url, name="orders")
    assert call(proxy, "/first").status_code == 200
    response = call(proxy, "/order", method="POST", data=b"buy one")
    assert response.status_code == 502
    assert response.json is not None and response.json["detail"] == "The upstream orders could not be reached."
    assert echo.connections == 1  # no second attempt
    assert len(proxy_warnings(caplog)) == 1


def test_forked_child_does_not_use_inherited_connections(
    upstream: Server, echo: EchoApp, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    proxy = make_proxy(upstream.url, timeout=5.0)
    parent_port = json.loads(call(proxy, "/parent").data)["port"]
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: one request through the inherited proxy
        code = 3
        try:
            os.close(read_end)
            response = call(proxy, "/child")
            child_port = json.loads(response.data)["port"]
            os.write(write_end, str(child_port).encode())
            code = 0 if response.status_code == 200 and child_port != parent_port else 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child did not finish in 30 s")
            time.sleep(0.02)
        child_port = int(os.read(read_end, 64) or b"0")
    finally:
        os.close(read_end)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, parent_port, child_port)
    # The child only closed its copy of the descriptor: the parent's pooled
    # connection still works and is reused.
    assert json.loads(call(proxy, "/parent-again").data)["port"] == parent_port


def test_pickled_proxy_starts_with_no_connections(
    upstream: Server, echo: EchoApp, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    proxy = make_proxy(upstream.url, name="canary")
    call(proxy)
    copy = pickle.loads(pickle.dumps(proxy))
    try:
        assert (copy.base_url, copy.name, copy.label) == (proxy.base_url, "canary", "canary")
        assert call(copy).status_code == 200
    finally:
        copy.close()
    assert echo.connections == 2


def test_construction_opens_no_socket_and_starts_no_thread() -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    code = (
        "import os, threading\n"
        "from graywsgi.httputil.proxy import UpstreamProxy\n"
        "before = set(os.listdir('/proc/self/fd'))\n"
        "proxies = [UpstreamProxy('http://127.0.0.1:9/x'), UpstreamProxy('https://example.com', max_idle=0)]\n"
        "after = set(os.listdir('/proc/self/fd'))\n"
        "new = [fd for fd in after - before if os.path.exists(f'/proc/self/fd/{fd}')]\n"
        "print(threading.active_count(), len(new), sum(len(p._pools) for p in proxies))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "0", "0"]


def test_threads_share_one_proxy(front: Server, echo: EchoApp) -> None:
    def worker(thread: int) -> list[tuple[str, str, dict[str, t.Any]]]:
        results = []
        for n in range(25):
            body = f"{thread}:{n}:".encode() * (n + 1)
            response, data = fetch(
                front, "POST", f"/t/{thread}/{n}?n={n}", body=body, headers={"X-Req": f"{thread}-{n}"}
            )
            assert response.status == 200
            results.append((f"{thread}-{n}", hashlib.sha256(body).hexdigest(), json.loads(data)))
        return results

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = [item for batch in pool.map(worker, range(8)) for item in batch]
    assert len(outcomes) == 200
    for request_id, digest, seen in outcomes:
        thread, n = request_id.split("-")
        assert seen["headers"]["X-Req"] == request_id
        assert seen["raw_uri"] == f"/t/{thread}/{n}?n={n}"
        assert seen["sha256"] == digest
    assert len(echo.ports) == 200
    assert echo.connections <= 40  # about one per client thread, pooled


# -- errors ---------------------------------------------------------------------


def test_upstream_down_answers_502(
    make_proxy: t.Callable[..., UpstreamProxy],
    start_server: t.Callable[..., Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    proxy = make_proxy(f"http://127.0.0.1:{port}")
    front = start_server(proxy, handler=TrackedHandler)
    response, data = fetch(front, "GET", "/")
    assert response.status == 502
    assert response.getheader("Content-Type") == PROBLEM_CONTENT_TYPE
    document = json.loads(data)
    assert document["status"] == 502 and document["title"] == "Bad Gateway"
    assert document["detail"] == f"The upstream 127.0.0.1:{port} could not be reached."
    [record] = proxy_warnings(caplog)
    assert f"127.0.0.1:{port}" in record.getMessage()
    assert "ConnectionRefusedError" in record.getMessage()


def test_unknown_host_answers_502(
    make_proxy: t.Callable[..., UpstreamProxy], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name that does not resolve. The resolver itself is the one edge
    # faked here: a real lookup would send a DNS query off this machine.
    def no_such_host(*args: t.Any, **kwargs: t.Any) -> t.NoReturn:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    proxy = make_proxy("http://upstream.example:8080", name="nowhere")
    response = call(proxy)
    assert response.status_code == 502
    assert response.json is not None and response.json["detail"] == "The upstream nowhere could not be reached."
    [record] = proxy_warnings(caplog)
    assert "gaierror" in record.getMessage()


def test_connect_timeout_answers_504(
    make_proxy: t.Callable[..., UpstreamProxy], caplog: pytest.LogCaptureFixture
) -> None:
    # A listener that never accepts, its backlog filled: a further connect
    # gets no answer (Linux drops the SYN), which is what a dead host does.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            with socket.socket() as probe:
                probe.settimeout(0.3)
                try:
                    probe.connect(("127.0.0.1", port))
                except TimeoutError:
                    pass
                else:
                    pytest.skip("this system accepts connections beyond the listen backlog")
            proxy = make_proxy(f"http://127.0.0.1:{port}", connect_timeout=0.3)
            response = call(proxy)
        finally:
            for filler in fillers:
                filler.close()
    assert response.status_code == 504
    assert response.json is not None
    assert response.json["detail"] == f"The upstream 127.0.0.1:{port} did not answer in time."
    [record] = proxy_warnings(caplog)
    assert "timed out" in record.getMessage()


def test_slow_upstream_answers_504(
    start_server: t.Callable[..., Server],
    make_proxy: t.Callable[..., UpstreamProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def slow(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"late"]

    upstream = start_server(slow)
    front = start_server(make_proxy(upstream.url, name="slowpoke", timeout=0.5), handler=TrackedHandler)
    try:
        response, data = fetch(front, "GET", "/")
    finally:
        release.set()
    assert response.status == 504
    assert response.getheader("Content-Type") == PROBLEM_CONTENT_TYPE
    document = json.loads(data)
    assert document["status"] == 504
    assert document["detail"] == "The upstream slowpoke did not answer in time."
    [record] = proxy_warnings(caplog)
    assert "slowpoke" in record.getMessage() and "timed out" in record.getMessage()


def test_failure_after_headers_ends_the_body(
    start_server: t.Callable[..., Server],
    make_proxy: t.Callable[..., UpstreamProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def truncated(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "1000")])
        return [b"x" * 10]  # then werkzeug closes the connection

    proxy = make_proxy(start_server(truncated, handler=TrackedHandler).url)
    body = proxy(create_environ("/"), lambda status, headers, exc_info=None: lambda data: None)
    try:
        with pytest.raises(http.client.IncompleteRead):
            for _ in body:
                pass
    finally:
        getattr(body, "close")()
    assert len(proxy_warnings(caplog)) == 1

    front = start_server(proxy, handler=TrackedHandler)
    with pytest.raises(http.client.IncompleteRead):
        fetch(front, "GET", "/")


@pytest.mark.parametrize(
    "overrides, detail",
    [
        pytest.param({"CONTENT_LENGTH": "12x"}, "Content-Length", id="Content-Length not a number"),
        pytest.param({"HTTP_X_BAD": "a\x01b"}, "X-Bad", id="control character in a header"),
        pytest.param({"HTTP_X_BAD": "a\r\nInjected: 1"}, "X-Bad", id="line break in a header"),
    ],
)
def test_unforwardable_requests_answer_400(
    upstream: Server,
    echo: EchoApp,
    make_proxy: t.Callable[..., UpstreamProxy],
    overrides: dict[str, str],
    detail: str,
) -> None:
    environ = create_environ("/")
    environ.update(overrides)
    app_iter, status, headers = run_wsgi_app(make_proxy(upstream.url), environ, buffered=True)
    assert status.startswith("400 ")
    assert dict(headers)["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert detail in json.loads(b"".join(app_iter))["detail"]
    assert echo.ports == []


def test_request_body_shorter_than_content_length_answers_400(
    upstream: Server, make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    environ = create_environ("/", method="POST")
    environ["CONTENT_LENGTH"] = "100"
    environ["wsgi.input"] = io.BytesIO(b"x" * 10)
    app_iter, status, _ = run_wsgi_app(make_proxy(upstream.url), environ, buffered=True)
    assert status.startswith("400 ")
    assert "ended" in json.loads(b"".join(app_iter))["detail"]


# -- TLS ------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_https_upstream(
    certificate: tuple[Path, Path],
    start_server: t.Callable[..., Server],
    make_proxy: t.Callable[..., UpstreamProxy],
    echo: EchoApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    upstream = start_server(echo, ssl_context=server_context)
    trusted = make_proxy(upstream.url, ssl_context=ssl.create_default_context(cafile=str(cert)))
    for _ in range(3):
        response = call(trusted, "/secure?x=1")
        assert response.status_code == 200
        assert json.loads(response.data)["raw_uri"] == "/secure?x=1"
    assert echo.connections == 1

    untrusted = make_proxy(upstream.url)  # the system store does not know this certificate
    assert call(untrusted).status_code == 502
    [record] = proxy_warnings(caplog)
    assert "SSLCertVerificationError" in record.getMessage()


# -- construction ---------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url, scheme, host, port, prefix, label, host_header",
    [
        pytest.param("http://example.com", "http", "example.com", 80, "", "example.com:80", "example.com", id="http default port"),
        pytest.param("https://example.com/", "https", "example.com", 443, "", "example.com:443", "example.com", id="https default port"),
        pytest.param("http://Example.COM:8080/api/v1/", "http", "example.com", 8080, "/api/v1", "example.com:8080", "example.com:8080", id="port and prefix"),
        pytest.param("http://example.com:80/x", "http", "example.com", 80, "/x", "example.com:80", "example.com", id="explicit default port"),
        pytest.param("http://[::1]:9000/x", "http", "::1", 9000, "/x", "[::1]:9000", "[::1]:9000", id="IPv6"),
        pytest.param("HTTPS://10.0.0.9:65535", "https", "10.0.0.9", 65535, "", "10.0.0.9:65535", "10.0.0.9:65535", id="IPv4, highest port"),
    ],
)  # fmt: skip
def test_valid_base_urls(
    base_url: str, scheme: str, host: str, port: int, prefix: str, label: str, host_header: str
) -> None:
    proxy = UpstreamProxy(base_url)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.prefix) == (scheme, host, port, prefix)
    assert (proxy.label, proxy.host_header) == (label, host_header)


@pytest.mark.parametrize(
    "base_url, options, message",
    [
        pytest.param("ftp://example.com", {}, "scheme must be http or https", id="ftp scheme"),
        pytest.param("example.com:8080", {}, "scheme must be http or https", id="no scheme"),
        pytest.param("http://", {}, "no host", id="no host"),
        pytest.param("http://:8080/x", {}, "no host", id="port without host"),
        pytest.param("http://user:pw@example.com", {}, "credentials", id="credentials"),
        pytest.param("http://example.com/?a=1", {}, "no query or fragment", id="query"),
        pytest.param("http://example.com/?", {}, "no query or fragment", id="empty query"),
        pytest.param("http://example.com/#top", {}, "no query or fragment", id="fragment"),
        pytest.param("http://example.com:0", {}, "port must be a number from 1 to 65535", id="port 0"),
        pytest.param("http://example.com:70000", {}, "port must be a number from 1 to 65535", id="port too high"),
        pytest.param("http://example.com:http", {}, "port must be a number from 1 to 65535", id="port not a number"),
        pytest.param("http://example.com:", {}, "port must be a number from 1 to 65535", id="empty port"),
        pytest.param("http://exa mple.com", {}, "space or a control character", id="space"),
        pytest.param("http://example.com/\n", {}, "space or a control character", id="newline"),
        pytest.param("http://bücher.example", {}, "must be ASCII", id="non-ASCII host"),
        pytest.param("http://bad_host!", {}, "not a valid host name", id="invalid host name"),
        pytest.param("http://[fe80::zz]", {}, "", id="invalid IPv6"),
        pytest.param("", {}, "non-empty str", id="empty"),
        pytest.param(b"http://example.com", {}, "non-empty str", id="bytes"),
        pytest.param("http://example.com", {"timeout": 0}, "timeout must be a finite number > 0", id="zero timeout"),
        pytest.param("http://example.com", {"timeout": -1.5}, "timeout must be a finite number > 0", id="negative timeout"),
        pytest.param("http://example.com", {"timeout": float("nan")}, "timeout must be a finite number > 0", id="NaN timeout"),
        pytest.param("http://example.com", {"timeout": float("inf")}, "timeout must be a finite number > 0", id="infinite timeout"),
        pytest.param("http://example.com", {"timeout": "30"}, "timeout must be a number", id="timeout as str"),
        pytest.param("http://example.com", {"timeout": True}, "timeout must be a number", id="timeout as bool"),
        pytest.param("http://example.com", {"connect_timeout": 0}, "connect_timeout must be a finite number > 0", id="zero connect timeout"),
        pytest.param("http://example.com", {"max_idle": -1}, "max_idle must be an int >= 0", id="negative max_idle"),
        pytest.param("http://example.com", {"max_idle": 2.5}, "max_idle must be an int >= 0", id="fractional max_idle"),
        pytest.param("http://example.com", {"max_idle": True}, "max_idle must be an int >= 0", id="max_idle as bool"),
        pytest.param("http://example.com", {"name": ""}, "name must be a non-empty str", id="empty name"),
        pytest.param("http://example.com", {"ssl_context": "tls"}, "ssl_context must be an ssl.SSLContext", id="ssl_context not a context"),
        pytest.param("http://example.com", {"ssl_context": ssl.create_default_context()}, "ssl_context given for an http URL", id="ssl_context for http"),
    ],
)  # fmt: skip
def test_construction_errors(base_url: t.Any, options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        UpstreamProxy(base_url, **options)
    assert message in str(caught.value)
    if isinstance(base_url, str) and base_url and not options:
        assert repr(base_url) in str(caught.value)
