"""Tests of graywsgi.httputil.proxy_response: streaming the answer back, then pooling or closing."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import typing as t

import pytest
from werkzeug.test import create_environ

from graywsgi.httputil.proxy import UpstreamProxy
from tests.httputil.conftest import EchoApp, Server, TrackedHandler, call, fetch, proxy_warnings

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


# -- bodies ---------------------------------------------------------------------


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


# -- errors ---------------------------------------------------------------------


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
