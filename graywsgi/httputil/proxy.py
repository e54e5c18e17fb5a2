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

The proxy is in five modules: this one holds :class:`UpstreamProxy` -- its
options, connection pool, retries and errors; the request it sends is built
in :mod:`graywsgi.httputil.proxy_request` ("What goes upstream"), the answer
streamed back by :mod:`graywsgi.httputil.proxy_response` ("What comes
back"), the headers that pass either way are chosen in
:mod:`graywsgi.httputil.proxy_headers`, and the base URL is checked in
:mod:`graywsgi.httputil.proxy_url`.

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
``host:port``); the error itself goes to the ``graywsgi.proxy`` logger, once,
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
import logging
import math
import os
import select
import ssl
import threading
import typing as t

from graywsgi.errors import ConfigurationError, RequestError, problem_response
from graywsgi.httputil.proxy_headers import HOP_BY_HOP, _response_headers
from graywsgi.httputil.proxy_request import CHUNK_SIZE, _ClientBodyError, _describe, _Outgoing, _outgoing_request
from graywsgi.httputil.proxy_response import _UPSTREAM_ERRORS, _phrase, _ResponseStream
from graywsgi.httputil.proxy_url import _DEFAULT_PORTS, _parse_base_url

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["UpstreamProxy", "HOP_BY_HOP", "IDEMPOTENT_METHODS", "CHUNK_SIZE", "ENVIRON_KEY"]

logger = logging.getLogger("graywsgi.proxy")

#: The environ key the proxy records its upstream under.
ENVIRON_KEY = "graywsgi.upstream"

#: Methods that may be sent twice (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

# Failures that mean "the reused connection was already dead".
_STALE_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


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
            outgoing = _outgoing_request(
                environ, prefix=self.prefix, host_header=self.host_header, preserve_host=self.preserve_host
            )
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
