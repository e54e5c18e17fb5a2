"""Tests of graywsgi.httputil.proxy: UpstreamProxy end to end -- pool, retries, errors, TLS, options."""

from __future__ import annotations

import hashlib
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
from werkzeug.test import create_environ

from graywsgi.errors import PROBLEM_CONTENT_TYPE, ConfigurationError
from graywsgi.httputil.proxy import ENVIRON_KEY, UpstreamProxy
from tests.httputil.conftest import (
    EchoApp,
    KeepAliveHandler,
    Server,
    TrackedHandler,
    call,
    fetch,
    proxy_warnings,
)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


# -- servers ------------------------------------------------------------------


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- what goes upstream -------------------------------------------------------


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
