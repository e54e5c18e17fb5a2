"""Shared helpers of the httputil tests: trust-boundary requests and signatures; real servers for the proxy."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import threading
import time
import typing as t

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import Client, TestResponse, create_environ
from werkzeug.wsgi import LimitedStream, get_input_stream

from graywsgi.core.context import Source
from graywsgi.httputil.proxy import UpstreamProxy
from graywsgi.httputil.signing import sign
from graywsgi.httputil.trust import TrustPolicy

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# --- trust: requests and signatures ---------------------------------------------------

NOW = 1_700_000_000
OLD_KEY = "old-secret-2023"
NEW_KEY = b"new-secret-\x00\xff-2024"

ALL_GRAY = {
    "X-Gray-ID": "user-42",
    "X-Traffic-Color": "canary",
    "X-Canary-Weight": "0.25",
    "X-Version": "2.1.0",
    "X-Env": "prod",
    "X-Canary-ID": "c-7",
}


def make_environ(
    headers: t.Mapping[str, str] | None = None, **overrides: t.Any
) -> WSGIEnvironment:
    """A request environ; headers are set as raw WSGI keys, so any value goes."""
    environ = create_environ("/")
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(overrides)
    return environ


def signed_policy(**options: t.Any) -> TrustPolicy:
    options.setdefault("signing_keys", {"k2023": OLD_KEY, "k2024": NEW_KEY})
    options.setdefault("clock", lambda: float(NOW))
    return TrustPolicy(**options)


GOOD_DIGEST = sign(NEW_KEY, "k2024", ALL_GRAY, NOW).rpartition("v1=")[2]

GOOD = sign(NEW_KEY, "k2024", ALL_GRAY, NOW)


def classify_signed(
    signature: str | None,
    headers: t.Mapping[str, str] = ALL_GRAY,
    **options: t.Any,
) -> Source:
    policy = signed_policy(**options)
    full = dict(headers)
    if signature is not None:
        full["X-Gray-Signature"] = signature
    return policy.classify(make_environ(full, REMOTE_ADDR="203.0.113.7"))


# --- proxy: real servers on 127.0.0.1 --------------------------------------------------
#
# Every upstream is a real werkzeug server in a daemon thread; most tests call
# the proxy through a second real werkzeug server with ``http.client``, so
# chunked requests and streamed responses cross real sockets. Tests that need
# a hand-made environ (no ``RAW_URI``, a short body) call the proxy directly.
#
# werkzeug's development server always answers ``Connection: close``, so the
# upstreams use :class:`KeepAliveHandler`: werkzeug's handler and environ with
# an HTTP/1.1 keep-alive response writer, so pooling can be observed.


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


def proxy_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "graywsgi.proxy" and r.levelno == logging.WARNING]
