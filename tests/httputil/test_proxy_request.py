"""Tests of graywsgi.httputil.proxy_request: the request line, headers and body sent upstream."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import typing as t

import pytest
from werkzeug.test import create_environ, run_wsgi_app
from werkzeug.wsgi import get_input_stream

from graywsgi.errors import PROBLEM_CONTENT_TYPE
from graywsgi.httputil.proxy import UpstreamProxy
from tests.httputil.conftest import EchoApp, Server, TrackedHandler, call, fetch

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


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


# -- refused requests ---------------------------------------------------------------


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
