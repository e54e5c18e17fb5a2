"""
Upstream proxy
==============

The *proxy* use of the split (DESIGN §1): graywsgi runs under gunicorn as a
small gray gateway in front of an old and a new deployment. The router
chooses a route name, the route names an :class:`UpstreamProxy`, and the
proxy -- a plain WSGI application -- forwards the request to its upstream
and streams the answer back.

.. code-block:: python

    from graywsgi.httputil.proxy import UpstreamProxy

    upstreams = {
        "stable": UpstreamProxy("http://10.0.0.5:8000", name="stable"),
        "canary": UpstreamProxy("http://10.0.0.9:8000/v2", name="canary"),
    }

What goes upstream
------------------

- **Request line.** The method; the path ``prefix + SCRIPT_NAME +
  PATH_INFO``, where ``prefix`` is the path of the base URL. When the server
  supplies the raw request target (``RAW_URI`` from gunicorn and werkzeug,
  ``REQUEST_URI`` from uWSGI and mod_wsgi) and it still decodes to
  ``SCRIPT_NAME + PATH_INFO`` (nothing rewrote the path; bytes that are not
  UTF-8 may have become U+FFFD in ``PATH_INFO``), its exact bytes are sent,
  so ``%2F`` stays ``%2F`` and ``%FF`` stays ``%FF``; otherwise the decoded
  path is percent-encoded again (a literal ``%`` as ``%25``). Then
  ``?QUERY_STRING`` when it is not empty. Bytes that cannot appear in a
  request line (controls, space, non-ASCII) are percent-encoded.
- **Headers.** Every ``HTTP_*`` header (its name back in ``Title-Case``)
  plus ``Content-Type`` and ``Content-Length``, except the hop-by-hop
  headers (:data:`HOP_BY_HOP`, and every header the ``Connection`` header
  names) and ``Expect`` (the server in front already answered it).
  ``Host`` becomes the upstream's host unless ``preserve_host=True``.
  ``X-Forwarded-For`` gets ``REMOTE_ADDR`` appended, ``X-Forwarded-Proto``
  is set to ``wsgi.url_scheme`` and ``X-Forwarded-Host`` to the Host the
  client sent. A header value with a control character is refused (400),
  never forwarded.
- **Body.** Streamed in 64 KiB pieces, never held whole in memory. A
  request that came in chunked (a ``Transfer-Encoding`` header and
  ``wsgi.input_terminated``, as gunicorn and werkzeug set them) goes out
  chunked; otherwise, with ``CONTENT_LENGTH``, exactly that many bytes are
  sent; anything else has no body. (gunicorn sets ``wsgi.input_terminated``
  on every request, so the ``Transfer-Encoding`` header is what tells a
  chunked body from none.) A body that ends before its ``Content-Length``
  is answered 400 and the upstream connection dropped.

What comes back
---------------

The status line and headers, minus the hop-by-hop ones and ``Date`` and
``Server`` (the WSGI server in front sets its own; gunicorn and nginx drop
them the same way), then the body, streamed as it arrives. The response
iterable's ``close()`` -- which every PEP 3333 server calls -- puts the
connection back in the pool only when the upstream response was read to its
end and allows keep-alive; a response the client abandoned half-way closes
the connection.

``environ["graywsgi.upstream"]`` is set to the proxy's ``name`` (or its base
URL) for access logs.

Connections
-----------

Nothing is opened when the proxy is built: no socket, no thread, no lock.
Connections are made on first use, in the process that uses them, and kept
in a small LIFO pool of at most ``max_idle`` idle connections per process.
A pooled connection the upstream has already closed is noticed (a zero-time
poll) and discarded before use.

*Fork safety.* The pool belongs to the process id that created it. When
gunicorn forks workers after the application was built (``preload_app``),
a worker's first request finds a pool of another process: the inherited
idle connections are dropped without being used -- their file descriptors
closed, no ``shutdown()``, so the parent's sockets are untouched -- and the
worker starts its own pool.

*Threads.* One lock per pool guards only the idle list; it is never held
during I/O.

Retries
-------

A request sent on a *reused* connection that fails before any byte of the
response (``RemoteDisconnected``, ``BrokenPipeError``,
``ConnectionResetError``: the upstream closed the idle connection as the
request went out) is sent once more on a new connection, but only when the
request has no body or its method is idempotent (GET, HEAD, OPTIONS, TRACE,
PUT, DELETE) -- and never once some of the body has been read from the
client, since a streamed body cannot be replayed. A body-less POST is
retried too: an upstream that took it and died before answering may see it
twice. Nothing else is retried;
in particular a failure on a new connection is not. The stale-connection
check above makes the retry rare.

Errors
------

========================================  ===================================
Failure                                   Answer
========================================  ===================================
refused, DNS, TLS or other socket error,  502, problem+json
malformed response, before the headers
connect timeout, or no response headers   504, problem+json
within ``timeout``
body shorter than ``Content-Length``      400, problem+json
any error after the headers were sent     the body iterable raises
========================================  ===================================

The 502 and 504 ``detail`` names the upstream only by ``name`` (or
``host:port``); the error itself goes to the ``graywsgi.httputil.proxy`` logger, once,
at WARNING, with the base URL. Once the status line has gone to the client
there is no way to report an error in HTTP, so a failure while streaming
the body is logged and re-raised: the WSGI server then aborts the client
connection and the client sees a truncated response, not a complete-looking
one.

The response is read only once the whole request body has been sent, so an
upstream that answers early and stops reading (a 413 to a large upload)
shows up as a 502. Not supported: protocol upgrades (WebSocket, ``h2c``),
``1xx`` informational responses other than ``100 Continue``, and HTTP
trailers.

Security note
-------------

Everything the client sent is forwarded, gray headers included: put the
trust layer in front of the proxy so that untrusted ``X-Gray-ID`` or
``X-Traffic-Color`` never reach the upstream. ``X-Forwarded-For`` is
appended to, so all but its last entry are whatever the client claimed; an
upstream behind this gateway should trust exactly one hop (werkzeug
``ProxyFix(x_for=1, x_proto=1, x_host=1)``). ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` from the client are replaced, not kept. Credentials in
the base URL are refused (they would end up in logs); the request framing is
always rebuilt (a ``Content-Length`` *or* chunked encoding, never both), so
a client cannot smuggle a second request to the upstream. Upstream TLS
certificates are verified against the system store unless ``ssl_context``
says otherwise.

Validation
----------

The base URL and the options are checked when the proxy is built, and a
:class:`~graywsgi.errors.ConfigurationError` names the URL and the problem:

>>> proxy = UpstreamProxy("http://127.0.0.1:8080/api/", name="canary")
>>> proxy.host, proxy.port, proxy.prefix, proxy.label
('127.0.0.1', 8080, '/api', 'canary')
>>> UpstreamProxy("ftp://example.com")
Traceback (most recent call last):
    ...
graywsgi.errors.ConfigurationError: upstream URL 'ftp://example.com': the scheme must be http or https, not 'ftp'
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import math
import os
import re
import select
import ssl
import threading
import typing as t
from http import HTTPStatus
from urllib.parse import quote, unquote_to_bytes, urlsplit

from graywsgi.errors import ConfigurationError, RequestError, problem_response
from graywsgi.httputil.headers import valid_field_value

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["UpstreamProxy", "HOP_BY_HOP", "IDEMPOTENT_METHODS", "CHUNK_SIZE", "ENVIRON_KEY"]

logger = logging.getLogger("graywsgi.proxy")

#: Size of the pieces a body is read and forwarded in.
CHUNK_SIZE = 64 * 1024

#: The environ key the proxy records its upstream under.
ENVIRON_KEY = "graywsgi.upstream"

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1),
#: lower-case. Headers named in ``Connection`` are dropped too.
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Methods that may be sent twice (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

# Request headers the proxy rebuilds itself or must not pass on.
_REQUEST_SKIP = HOP_BY_HOP | {
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "expect",
    "content-length",
    "content-type",
}
# Response headers the WSGI server in front sets itself.
_RESPONSE_SKIP = HOP_BY_HOP | {"date", "server"}

# Failures that mean "the reused connection was already dead".
_STALE_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
# Failures that mean "the upstream did not give a usable response".
_UPSTREAM_ERRORS = (OSError, http.client.HTTPException)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
# A decoded path is re-encoded with these kept; "%" is not among them:
# in PATH_INFO it is a literal percent sign and must go out as "%25".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Raw request-target bytes are kept except those a request line cannot hold.
_RAW_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")


class _ClientBodyError(Exception):
    """The client's request body could not be read to its announced end."""


class _Pool:
    """Idle keep-alive connections of one process, reused last-in first-out."""

    __slots__ = ("pid", "lock", "idle")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.lock = threading.Lock()
        self.idle: list[http.client.HTTPConnection] = []

    def take(self) -> http.client.HTTPConnection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def put(self, conn: http.client.HTTPConnection, max_idle: int) -> bool:
        with self.lock:
            if len(self.idle) < max_idle:
                self.idle.append(conn)
                return True
        return False

    def take_all(self) -> list[http.client.HTTPConnection]:
        with self.lock:
            idle, self.idle = self.idle, []
        return idle


class _RequestBody:
    """The client's body as an iterator of pieces, for one or two attempts."""

    __slots__ = ("stream", "length", "chunked", "started")

    def __init__(self, stream: t.Any, length: int | None, chunked: bool) -> None:
        self.stream = stream
        self.length = length
        self.chunked = chunked
        self.started = False

    @property
    def present(self) -> bool:
        return self.chunked or bool(self.length)

    def _read(self, size: int) -> bytes:
        self.started = True
        try:
            chunk: bytes = self.stream.read(size)
        except Exception as exc:
            raise _ClientBodyError(_describe(exc)) from exc
        return chunk

    def pieces(self) -> t.Iterator[bytes]:
        if self.chunked:
            while chunk := self._read(CHUNK_SIZE):
                yield chunk
            return
        remaining = self.length or 0
        while remaining > 0:
            chunk = self._read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise _ClientBodyError(f"the body ended {remaining} bytes short of its Content-Length")
            remaining -= len(chunk)
            yield chunk


class _Outgoing(t.NamedTuple):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: _RequestBody


def _connection_tokens(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(token.strip(" \t").lower() for token in value.split(","))


def _wsgi_bytes(text: str) -> bytes:
    """The bytes a WSGI (latin-1) string stands for.

    A character above U+00FF cannot have come from a server; one an
    application put there is taken as UTF-8.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _quote_raw(text: str) -> str:
    """A raw (latin-1) request-target piece, made safe for a request line."""
    if text.isascii() and text.isprintable() and " " not in text and "#" not in text:
        return text
    return quote(_wsgi_bytes(text), safe=_RAW_SAFE)


def _same_path(raw: bytes, wsgi: bytes) -> bool:
    """Whether the decoded raw target and the WSGI path are the same path.

    Some servers (werkzeug's among them) put U+FFFD in ``PATH_INFO`` for
    bytes that are not UTF-8, so the paths are also compared that way.
    """
    return raw == wsgi or raw.decode("utf-8", "replace") == wsgi.decode("utf-8", "replace")


def _is_usable(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection is still open and has nothing unread."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class UpstreamProxy:
    """A WSGI application that forwards each request to one upstream.

    >>> proxy = UpstreamProxy("https://canary.internal", timeout=5.0)
    >>> proxy.label, proxy.host_header
    ('canary.internal:443', 'canary.internal')

    :param base_url: ``http://host[:port][/prefix]`` or ``https://...``;
        no credentials, query or fragment.
    :param timeout: seconds to wait for each read from, or write to, the
        upstream once connected (so also for the response headers).
    :param connect_timeout: seconds to wait for the TCP (and TLS) connect.
    :param max_idle: idle keep-alive connections kept per process (0: none).
    :param preserve_host: send the client's ``Host`` instead of the
        upstream's (for upstreams that route by virtual host).
    :param name: the upstream's name in error details, logs and
        ``environ["graywsgi.upstream"]``; defaults to ``host:port`` in
        details and the base URL elsewhere.
    :param ssl_context: the TLS context for an ``https`` upstream; the
        default verifies certificates against the system store.
    :raises ConfigurationError: for an unusable URL or option.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 3.0,
        max_idle: int = 16,
        preserve_host: bool = False,
        name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port, self.prefix = _parse_base_url(base_url)
        self.base_url = base_url
        for option, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"{option} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{option} must be a finite number > 0, got {value!r}")
        if isinstance(max_idle, bool) or not isinstance(max_idle, int) or max_idle < 0:
            raise ConfigurationError(f"max_idle must be an int >= 0, got {max_idle!r}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigurationError(f"name must be a non-empty str or None, got {name!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ConfigurationError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        if ssl_context is not None and self.scheme != "https":
            raise ConfigurationError(f"upstream URL {base_url!r}: ssl_context given for an http URL")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_idle = max_idle
        self.preserve_host = preserve_host
        self.name = name
        self.ssl_context = ssl_context
        host = f"[{self.host}]" if ":" in self.host else self.host
        #: ``name``, or ``host:port``: how error details name the upstream.
        self.label = name if name is not None else f"{host}:{self.port}"
        #: The ``Host`` header sent upstream (unless ``preserve_host``).
        self.host_header = host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"
        self._log_name = f"{name} ({base_url})" if name is not None else base_url
        # One pool per process id; filled lazily (see "Fork safety").
        self._pools: dict[int, _Pool] = {}
        self._default_tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"UpstreamProxy({self.base_url!r}, name={self.name!r})"

    def __getstate__(self) -> dict[str, t.Any]:
        state = self.__dict__.copy()
        state["_pools"] = {}
        state["_default_tls"] = None
        return state

    # -- WSGI ------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        environ[ENVIRON_KEY] = self.name or self.base_url
        try:
            outgoing = self._outgoing(environ)
        except RequestError as refused:
            return problem_response(start_response, refused.status_hint, refused.detail)
        pool = self._pool()
        conn: http.client.HTTPConnection | None = pool.take()
        while conn is not None and not _is_usable(conn):
            conn.close()
            conn = pool.take()
        reused = conn is not None
        while True:
            try:
                if conn is None:
                    conn = self._connect()
                response = self._exchange(conn, outgoing)
                break
            except _ClientBodyError as exc:
                if conn is not None:
                    conn.close()
                logger.info("graywsgi proxy: request body for %s incomplete: %s", self._log_name, exc)
                return problem_response(
                    start_response, 400, "The request body ended before its announced length."
                )
            except _UPSTREAM_ERRORS as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                if reused and self._may_retry(exc, outgoing):
                    reused = False
                    logger.debug(
                        "graywsgi proxy: idle connection to %s was stale (%s); retrying once",
                        self._log_name,
                        _describe(exc),
                    )
                    continue
                return self._failure(start_response, exc)
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        try:
            reason = response.reason or _phrase(response.status)
            start_response(f"{response.status} {reason}", _response_headers(response))
        except BaseException:
            response.close()
            conn.close()
            raise
        return _ResponseStream(self, conn, response, pool.pid, head=outgoing.method == "HEAD")

    def close(self) -> None:
        """Close the idle pooled connections.

        Connections in use are not touched; they return to the (now empty)
        pool when their response is closed, and the proxy stays usable.
        """
        pid = os.getpid()
        for owner in list(self._pools):
            pool = self._pools.get(owner) if owner == pid else self._pools.pop(owner, None)
            if pool is None:
                continue
            idle = pool.take_all() if owner == pid else self._take_inherited(pool)
            for conn in idle:
                conn.close()

    # -- connections -----------------------------------------------------

    def _pool(self) -> _Pool:
        pid = os.getpid()
        pool = self._pools.get(pid)
        if pool is None:
            # setdefault is atomic: racing first requests share one pool.
            pool = self._pools.setdefault(pid, _Pool(pid))
            for owner in list(self._pools):
                if owner != pid:
                    inherited = self._pools.pop(owner, None)
                    if inherited is not None:
                        for conn in self._take_inherited(inherited):
                            conn.close()  # closes our copy of the fd; no shutdown()
        return pool

    @staticmethod
    def _take_inherited(pool: _Pool) -> list[http.client.HTTPConnection]:
        # Not under pool.lock: another thread of the parent may have held it
        # at fork time, and in this process no thread can release it.
        idle, pool.idle = pool.idle, []
        return idle

    def _release(self, conn: http.client.HTTPConnection, pid: int) -> None:
        if pid == os.getpid():
            pool = self._pools.get(pid)
            if pool is not None and pool.put(conn, self.max_idle):
                return
        conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            context = self.ssl_context or self._default_tls
            if context is None:
                context = self._default_tls = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(self.timeout)
        except BaseException:
            conn.close()
            raise
        conn.timeout = self.timeout
        return conn

    # -- request ---------------------------------------------------------

    def _outgoing(self, environ: WSGIEnvironment) -> _Outgoing:
        method = environ.get("REQUEST_METHOD", "GET")
        hop = _connection_tokens(environ.get("HTTP_CONNECTION"))
        original_host = environ.get("HTTP_HOST") or _server_host(environ)
        headers: list[tuple[str, str]] = [
            ("Host", original_host if self.preserve_host and original_host else self.host_header)
        ]
        for key, value in environ.items():
            if not key.startswith("HTTP_"):
                continue
            lower = key[5:].replace("_", "-").lower()
            if lower in _REQUEST_SKIP or lower in hop:
                continue
            headers.append((lower.title(), _checked_value(lower, value)))
        content_type = environ.get("CONTENT_TYPE")
        if content_type:
            headers.append(("Content-Type", _checked_value("content-type", content_type)))

        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "").strip(" \t")
        remote = environ.get("REMOTE_ADDR")
        if remote:
            forwarded_for = f"{forwarded_for}, {remote}" if forwarded_for else remote
        if forwarded_for:
            headers.append(("X-Forwarded-For", _checked_value("x-forwarded-for", forwarded_for)))
        headers.append(("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")))
        if original_host:
            headers.append(("X-Forwarded-Host", _checked_value("host", original_host)))

        raw_length = environ.get("CONTENT_LENGTH", "").strip(" \t")
        length: int | None = None
        chunked = False
        if environ.get("wsgi.input_terminated") and environ.get("HTTP_TRANSFER_ENCODING"):
            chunked = True  # Transfer-Encoding overrides Content-Length (RFC 9112 §6.3)
            headers.append(("Transfer-Encoding", "chunked"))
        elif raw_length:
            if not (raw_length.isascii() and raw_length.isdigit()):
                raise RequestError("The Content-Length header is not a number.")
            length = int(raw_length)
            headers.append(("Content-Length", str(length)))
        body = _RequestBody(environ.get("wsgi.input"), length, chunked)
        return _Outgoing(method, self._target(environ), headers, body)

    def _target(self, environ: WSGIEnvironment) -> str:
        wsgi_path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path: str | None = None
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if isinstance(raw, str) and raw.startswith("/"):
            raw_path = raw.partition("?")[0]
            if _same_path(unquote_to_bytes(_wsgi_bytes(raw_path)), _wsgi_bytes(wsgi_path)):
                path = _quote_raw(raw_path)
        if path is None:
            path = quote(_wsgi_bytes(wsgi_path), safe=_PATH_SAFE)
        target = self.prefix + path or "/"
        query = environ.get("QUERY_STRING")
        if query:
            target = f"{target}?{_quote_raw(query)}"
        return target

    def _exchange(self, conn: http.client.HTTPConnection, outgoing: _Outgoing) -> http.client.HTTPResponse:
        conn.putrequest(outgoing.method, outgoing.target, skip_host=True, skip_accept_encoding=True)
        for name, value in outgoing.headers:
            conn.putheader(name, value)
        body = outgoing.body
        if body.present:
            conn.endheaders(body.pieces(), encode_chunked=body.chunked)
        else:
            conn.endheaders()
        return conn.getresponse()

    @staticmethod
    def _may_retry(exc: BaseException, outgoing: _Outgoing) -> bool:
        if not isinstance(exc, _STALE_ERRORS) or outgoing.body.started:
            return False
        return not outgoing.body.present or outgoing.method in IDEMPOTENT_METHODS

    def _failure(self, start_response: StartResponse, exc: BaseException) -> list[bytes]:
        if isinstance(exc, TimeoutError):
            logger.warning(
                "graywsgi proxy: upstream %s timed out: %s", self._log_name, _describe(exc)
            )
            return problem_response(start_response, 504, f"The upstream {self.label} did not answer in time.")
        logger.warning(
            "graywsgi proxy: upstream %s failed before responding: %s", self._log_name, _describe(exc)
        )
        return problem_response(start_response, 502, f"The upstream {self.label} could not be reached.")


class _ResponseStream:
    """The WSGI response iterable: the upstream body, then pool or close."""

    __slots__ = ("_proxy", "_conn", "_response", "_pid", "_head", "_closed")

    def __init__(
        self,
        proxy: UpstreamProxy,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        pid: int,
        *,
        head: bool,
    ) -> None:
        self._proxy = proxy
        self._conn = conn
        self._response = response
        self._pid = pid
        self._head = head
        self._closed = False

    def __iter__(self) -> _ResponseStream:
        return self

    def __next__(self) -> bytes:
        response = self._response
        try:
            chunk = response.read1(CHUNK_SIZE)
            if not chunk and response.length and not self._head:
                # read1() reports a body cut short of its Content-Length as
                # a plain end; it is not one.
                raise http.client.IncompleteRead(b"", response.length)
        except _UPSTREAM_ERRORS as exc:
            logger.warning(
                "graywsgi proxy: upstream %s failed while sending the body: %s",
                self._proxy._log_name,
                _describe(exc),
            )
            self.close()
            raise
        if not chunk:
            raise StopIteration
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        response, conn = self._response, self._conn
        if not response.isclosed() and (self._head or response.length == 0):
            try:
                response.read()  # nothing to read: marks the response complete
            except _UPSTREAM_ERRORS:
                pass
        if response.isclosed() and not response.will_close and conn.sock is not None:
            self._proxy._release(conn, self._pid)
        else:
            response.close()
            conn.close()


def _response_headers(response: http.client.HTTPResponse) -> list[tuple[str, str]]:
    hop = _connection_tokens(", ".join(response.headers.get_all("Connection") or ()))
    headers = []
    for name, value in response.getheaders():
        lower = name.lower()
        if lower in _RESPONSE_SKIP or lower in hop:
            continue
        if "\r" in value or "\n" in value:
            value = _LINE_BREAKS.sub(" ", value)  # unfold obs-fold
        headers.append((name, value))
    return headers


def _checked_value(lower_name: str, value: str) -> str:
    if not (value.isascii() and value.isprintable()) and not valid_field_value(value.strip(" \t")):
        raise RequestError(f"The {lower_name.title()} header has a value that cannot be forwarded.")
    return value


def _server_host(environ: WSGIEnvironment) -> str:
    server = environ.get("SERVER_NAME", "")
    port = environ.get("SERVER_PORT", "")
    if not server:
        return ""
    default = _DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", "http"))
    return f"{server}:{port}" if port and port != str(default) else str(server)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _parse_base_url(base_url: str) -> tuple[str, str, int, str]:
    """Validate ``base_url``; return scheme, host, port and path prefix."""

    def problem(message: str) -> ConfigurationError:
        return ConfigurationError(f"upstream URL {base_url!r}: {message}")

    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError(f"base_url must be a non-empty str, got {base_url!r}")
    if not base_url.isascii():
        raise problem("it must be ASCII (write an international host name in its xn-- form)")
    if any(ch <= " " or ch == "\x7f" for ch in base_url):
        raise problem("it contains a space or a control character")
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:
        raise problem(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise problem(f"the scheme must be http or https, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise problem("credentials in the URL are not supported (they would be logged)")
    if "?" in base_url or "#" in base_url:
        raise problem("a base URL has no query or fragment")
    host = parts.hostname or ""
    if not host:
        raise problem("it has no host")
    if ":" in host or parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem(f"{host!r} is not an IPv6 address") from None
    elif _HOSTNAME.fullmatch(host) is None:
        raise problem(f"{host!r} is not a valid host name")
    try:
        port = parts.port
    except ValueError:
        raise problem("the port must be a number from 1 to 65535") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise problem("the port must be a number from 1 to 65535")
        port = _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise problem("the port must be a number from 1 to 65535")
    return scheme, host, port, parts.path.rstrip("/")
