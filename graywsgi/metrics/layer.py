"""
Metrics
=======

Times and counts every request in statsd (Graphite, Datadog, Telegraf), by
route, A/B group, version, status class and method, so canary and stable
can be compared on one dashboard.

.. code-block:: python

    from graywsgi import Extraction, Router
    from graywsgi.metrics.layer import Metrics

    app.wsgi_app = Metrics(Extraction(Router(app.wsgi_app, "rules.yaml")),
                           host="127.0.0.1", port=8125, tag_style="dogstatsd")

Put it outermost: it times the request from the moment it enters until the
server *closes* the response iterable (a streamed body is part of the
request), and reads what the layers inside decided from the environ when it
closes (``environ["graywsgi.context"]``, ``environ["graywsgi.decision"]``).

What is sent
------------

One request sends one datagram (the lines below, newline-separated), split
only where it would exceed ``max_udp_size`` bytes. Names start with
``prefix`` (default ``graywsgi``).

- ``<prefix>.request`` (timer, ``ms``): every request; tags route, group,
  version, status, method (and ``trace_id`` on a sampled fraction);
- ``<prefix>.decision`` (counter): a split or the Router chose a route; tags
  route, group, reason, rule;
- ``<prefix>.extraction.degraded`` (counter): extraction degraded; tag
  level (``L1``, ``L2``, ``L3``);
- ``<prefix>.internal_error`` (counter): a layer failed open; tag layer;
- ``<prefix>.validation.failed`` (counter): pre-validation refused a
  request; the tags the layer gives;
- ``<prefix>.breaker.trip`` (counter) and ``<prefix>.breaker.state`` (gauge:
  0 closed, 1 half-open, 2 open): from :class:`MetricsListener`; tag route;
- ``<prefix>.rollback`` / ``<prefix>.resume`` (counters): from
  :meth:`MetricsListener.on_rollback` / ``on_resume``;
- ``<prefix>.metrics.dropped`` (counter): lines lost since the last send.

``status`` is the class: ``2xx`` ... ``5xx``; a request whose application
raised counts as ``5xx`` (as the breaker counts it). A missing value is
``none``. ``method`` is one of the nine standard methods, else ``other``.
``reason`` is the route's reason (``weight``, ``color``, ``version``,
``default``, ``rerouted_rolled_back``, ``rerouted_breaker_open``, ...;
``split`` for :class:`~graywsgi.layers.split.CanarySplit`), so requests sent to
stable by a rollback or an open breaker are counted there.

Tag styles
----------

statsd has no tags, so ``tag_style`` decides how they are written:

- ``"statsd"`` (default) -- plain statsd / Graphite: tag *values* are
  appended to the name in a fixed order, ``graywsgi.request.canary.none.1_5_0.2xx.GET:12.500|ms``;
  dots in values become ``_``. Trace ids are never put in names (each one
  would create a Graphite series).
- ``"dogstatsd"`` -- ``graywsgi.request:12.500|ms|#route:canary,group:none,...``.
- ``"influx"`` -- InfluxDB / Telegraf's statsd input:
  ``graywsgi.request,route=canary,group=none,...:12.500|ms``.

Or pass a :class:`TagStyle` subclass instance. Names and tag values are
sanitised: only ``A-Z a-z 0-9 _ -`` (and ``.`` and ``/`` in tagged styles)
survive, everything else -- ``:``, ``|``, ``@``, ``,``, ``#``, ``=``,
spaces, newlines, non-ASCII -- becomes ``_``; values are cut to
``max_value_length`` characters. Each dimension keeps at most
``max_values`` distinct values per process; later newcomers are sent as
``other``, so a client inventing ``X-Version`` values cannot blow up the
number of series.

Trace ids (the trace id of ``traceparent``, else the request id) are added
as a ``trace_id`` tag to the request timer of a ``trace_sample_rate``
fraction of requests only (default 1 %), to keep cardinality bounded.

Transports
----------

``transport="udp"`` (default): non-blocking, from the request's thread; a
full socket buffer drops the datagram instead of waiting. ``"tcp"`` and
``"unix"`` (a stream socket at ``socket_path``), as the ``statsd`` package
offers them: lines are queued (at most ``queue_size``) and written by a
sender thread, so a slow or dead server never holds a request; the socket
``timeout`` applies to that thread only. A host name (not an IP literal)
is resolved by a short-lived thread, off the request path.

Nothing is opened at construction: the socket (and the sender thread) is
created on first use in each process and again after a ``fork()``, so
gunicorn workers never share the master's socket.

Never hurts a request
---------------------

An unreachable or slow server, a full buffer, or an exception inside
metrics (a formatter that raises) never fails or delays the request: the
lost lines are counted (:meth:`Metrics.health`; and sent as
``<prefix>.metrics.dropped`` with the next datagram that goes out) and
logged on the ``graywsgi.metrics.layer`` logger at most once per
``error_interval`` seconds.

Hooks for other layers
----------------------

Layers report events for the current request with :func:`note` (a no-op
when no :class:`Metrics` wraps the request)::

    from graywsgi.metrics.layer import note, note_internal_error
    note_internal_error(environ, "split")
    note(environ, "validation.failed", operation="createOrder")
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import ipaddress
import logging
import os
import random
import re
import socket
import threading
import time
import typing as t
import weakref

from graywsgi.core.breaker import BreakerListener, BreakerState
from graywsgi.core.context import ENVIRON_KEY, DegradeLevel, GrayContext
from graywsgi.errors import ConfigurationError
from graywsgi.metrics.step import DECISION_KEY, EVENTS_KEY, MetricsStep, method_tag, send_datagram, status_class
from graywsgi.layers.pipeline import METRICS, Pipeline

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from graywsgi.core.window import WindowTotals

__all__ = [
    "Metrics",
    "MetricsListener",
    "StatsdSink",
    "TagStyle",
    "PlainStyle",
    "DogStatsdStyle",
    "InfluxStyle",
    "TAG_STYLES",
    "EVENTS_KEY",
    "note",
    "note_internal_error",
    "sanitize_name",
]

logger = logging.getLogger("graywsgi.metrics")


Tags = t.Sequence[t.Tuple[str, str]]


# -- hooks --------------------------------------------------------------------


def note(environ: WSGIEnvironment, event: str, **tags: str) -> None:
    """Count ``event`` for this request (``<prefix>.<event>``, +1, with ``tags``).

    For graywsgi's layers and for applications. Does nothing when no
    :class:`Metrics` wraps the request. Never raises.

    :param environ: the request's WSGI environ.
    :param event: the metric name after the prefix, e.g. ``"validation.failed"``.
    :param tags: dimensions; values are sanitised and bounded like all others.
    """
    events = environ.get(EVENTS_KEY)
    if events is not None:
        events.append((event, tags))


def note_internal_error(environ: WSGIEnvironment, layer: str) -> None:
    """Count an internal error of ``layer`` that the request survived (fail-open)."""
    note(environ, "internal_error", layer=layer)


# -- names and tag styles -----------------------------------------------------

_NAME_PART = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_UNSAFE_TAG_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_name(name: str, max_length: int = 200) -> str:
    """A metric name made safe: only ``A-Z a-z 0-9 _ - .``, no empty parts.

    >>> sanitize_name("breaker.trip:canary|c\\n")
    'breaker.trip_canary_c_'
    """
    parts = [part for part in _UNSAFE_NAME.sub("_", name[:max_length]).split(".") if part]
    return ".".join(parts) or "_"


class TagStyle:
    """How a metric line carries its tags. Subclass to write another format.

    A style turns tag pairs into a *fragment* once (:meth:`fragment`; the
    result is cached per combination) and puts name, value and fragment
    together per line (:meth:`line`). ``value`` is already ``"12.5|ms"``.
    """

    #: Whether ``trace_id`` tags may be written (False where they would
    #: become part of the metric name).
    trace_ids = True
    #: Characters that survive in a tag value; others become ``_``.
    unsafe_value = re.compile(r"[^A-Za-z0-9_.\-/]")

    def sanitize(self, value: str, max_length: int = 64) -> str:
        """Make a tag value safe for this style (never empty)."""
        return self.unsafe_value.sub("_", value[:max_length]) or "none"

    def fragment(self, tags: Tags) -> str:
        """The tags as this style writes them (already sanitised pairs)."""
        raise NotImplementedError

    def line(self, name: str, value: str, fragment: str) -> str:
        """One metric line: ``name``, ``value`` (``"1|c"``) and tag fragment."""
        raise NotImplementedError


class PlainStyle(TagStyle):
    """Plain statsd / Graphite: tag values become name parts, in order.

    >>> style = PlainStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("version", "1_5_0")]))
    'graywsgi.request.canary.1_5_0:12.500|ms'
    """

    trace_ids = False
    unsafe_value = re.compile(r"[^A-Za-z0-9_\-]")

    def fragment(self, tags: Tags) -> str:
        return "".join("." + value for _key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}{fragment}:{value}"


class DogStatsdStyle(TagStyle):
    """DogStatsD: ``name:value|type|#key:value,...``.

    >>> style = DogStatsdStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("status", "2xx")]))
    'graywsgi.request:12.500|ms|#route:canary,status:2xx'
    """

    def fragment(self, tags: Tags) -> str:
        if not tags:
            return ""
        return "|#" + ",".join(f"{key}:{value}" for key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}:{value}{fragment}"


class InfluxStyle(TagStyle):
    """InfluxDB / Telegraf statsd: ``name,key=value,...:value|type``.

    >>> style = InfluxStyle()
    >>> style.line("graywsgi.request", "12.500|ms", style.fragment([("route", "canary"), ("status", "2xx")]))
    'graywsgi.request,route=canary,status=2xx:12.500|ms'
    """

    def fragment(self, tags: Tags) -> str:
        return "".join(f",{key}={value}" for key, value in tags)

    def line(self, name: str, value: str, fragment: str) -> str:
        return f"{name}{fragment}:{value}"


#: ``tag_style`` names and their styles.
TAG_STYLES: t.Mapping[str, type[TagStyle]] = {
    "statsd": PlainStyle,
    "dogstatsd": DogStatsdStyle,
    "influx": InfluxStyle,
}


class _Dimension:
    """Raw value -> sanitised value, for at most ``limit`` distinct raw values."""

    __slots__ = ("_style", "values", "_limit", "_max_length")

    def __init__(self, style: TagStyle, limit: int, max_length: int) -> None:
        self._style = style
        #: the admitted values; callers on the hot path look here first
        self.values: dict[str | None, str] = {None: "none"}
        self._limit = limit + 1
        self._max_length = max_length

    def get(self, raw: str | None) -> str:
        value = self.values.get(raw)
        if value is None:
            if len(self.values) >= self._limit:
                return "other"
            value = self.values[raw] = self._style.sanitize(t.cast(str, raw), self._max_length)
        return value


_REQUEST_TAGS = ("route", "group", "version", "status", "method")
_DECISION_TAGS = ("route", "group", "reason", "rule")
_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


# -- fork awareness -----------------------------------------------------------


class _ForkGeneration:
    """Bumped in a child after ``fork()``: per-process resources are stale.

    Sockets and sender threads compare the generation they were made in
    with this one on use; locks are made anew at once, in case another
    thread of the parent held one when it forked.
    """

    value = 0
    sinks: weakref.WeakSet[StatsdSink] = weakref.WeakSet()

    @classmethod
    def after_fork_in_child(cls) -> None:
        cls.value += 1
        for sink in list(cls.sinks):
            sink._after_fork()


os.register_at_fork(after_in_child=_ForkGeneration.after_fork_in_child)


# -- health: count failures, log at most once per interval ---------------------


class _Health:
    __slots__ = ("_lock", "_interval", "_clock", "_next_log", "_since_log", "totals", "unreported")

    def __init__(self, interval: float, clock: t.Callable[[], float]) -> None:
        self._lock = threading.Lock()  # replaced after fork: see _ForkGeneration
        self._interval = interval
        self._clock = clock
        self._next_log = float("-inf")
        self._since_log: collections.Counter[str] = collections.Counter()
        self.totals: collections.Counter[str] = collections.Counter()
        #: lines lost and not yet reported as ``<prefix>.metrics.dropped``
        self.unreported = 0

    def failure(self, kind: str, exc: BaseException | None, lost: int) -> None:
        """``lost`` lines were not sent because of ``kind`` (``exc``)."""
        with self._lock:
            self.totals[kind] += 1
            self.totals["lines_dropped"] += lost
            self.unreported += lost
            self._since_log[kind] += 1
            now = self._clock()
            if now < self._next_log:
                return
            self._next_log = now + self._interval
            counts = ", ".join(f"{key} x{n}" for key, n in sorted(self._since_log.items()))
            self._since_log.clear()
        logger.warning(
            "graywsgi metrics: %s failed (%s); %s since the last report; requests are unaffected"
            " (next report in %.0f s at the earliest)",
            kind,
            f"{type(exc).__name__}: {exc}" if exc is not None else "no detail",
            counts,
            self._interval,
        )

    def reported(self, lost: int) -> None:
        """``lost`` of the unreported lines were reported (a datagram said so)."""
        with self._lock:
            self.unreported -= lost


# -- the sink -----------------------------------------------------------------

_TRANSPORTS = ("udp", "tcp", "unix")

#: The largest payload a UDP datagram over IPv4 can carry (65,535 - 8 - 20).
MAX_UDP_PAYLOAD = 65_507


def _statsd() -> t.Any:
    return importlib.import_module("statsd")


class _Udp(t.NamedTuple):
    generation: int
    sock: socket.socket
    address: t.Any
    client: t.Any  # keeps the statsd client (and so its socket) alive


class StatsdSink:
    """Sends metric lines to a statsd server; never raises, never blocks a caller.

    Built on the ``statsd`` package's clients (``StatsClient``,
    ``TCPStatsClient``, ``UnixSocketStatsClient``) for their sockets; the
    lines themselves are written here, because the package has no tags.

    :param host: server host (an IP literal avoids name resolution).
    :param port: server port.
    :param transport: ``"udp"``, ``"tcp"`` or ``"unix"``.
    :param socket_path: the stream socket's path, for ``"unix"``.
    :param ipv6: resolve ``host`` as IPv6.
    :param max_udp_size: largest datagram payload in bytes.
    :param timeout: socket timeout of the TCP/Unix sender thread, seconds.
    :param queue_size: TCP/Unix lines queued at most; more are dropped.
    :param retry_after: seconds to wait after a failed connection or
        resolution before trying again (lines meanwhile are dropped).
    :param error_interval: failures are logged at most once per this many seconds.
    :param clock: monotonic clock for the intervals (injectable for tests).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8125,
        transport: str = "udp",
        socket_path: str | None = None,
        ipv6: bool = False,
        max_udp_size: int = 1432,
        timeout: float = 0.5,
        queue_size: int = 10_000,
        retry_after: float = 1.0,
        error_interval: float = 60.0,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if importlib.util.find_spec("statsd") is None:
            raise ConfigurationError(
                "graywsgi metrics need the statsd package: pip install 'graywsgi[metrics]'"
            )
        if transport not in _TRANSPORTS:
            raise ConfigurationError(f"transport must be one of {_TRANSPORTS}, got {transport!r}")
        if transport == "unix" and not socket_path:
            raise ConfigurationError('transport="unix" needs socket_path')
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be from 1 to 65535, got {port!r}")
        for name, value in (("timeout", timeout), ("retry_after", retry_after), ("error_interval", error_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name, value in (("max_udp_size", max_udp_size), ("queue_size", queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        if max_udp_size > MAX_UDP_PAYLOAD:
            raise ConfigurationError(
                f"max_udp_size must be at most {MAX_UDP_PAYLOAD:,} (the largest UDP payload), got {max_udp_size:,}"
            )
        self.host = host
        self.port = port
        self.transport = transport
        self.socket_path = socket_path
        self.ipv6 = ipv6
        self.max_udp_size = max_udp_size
        self.timeout = float(timeout)
        self.queue_size = queue_size
        self.retry_after = float(retry_after)
        self._clock = clock
        self._health = _Health(float(error_interval), clock)
        self._lock = threading.Lock()
        try:
            ipaddress.ip_address(host)
            self._resolved: str | None = host
        except ValueError:
            self._resolved = None
        self._resolving = False
        self._udp: _Udp | None = None
        self._retry_at = float("-inf")
        # stream transports: per-process queue and sender thread
        self._generation = -1
        self._queue: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: ``report(lost)`` -> the line that reports ``lost`` dropped lines;
        #: set by :class:`Metrics`. Sent with the next datagram that goes out.
        self.report: t.Callable[[int], str] | None = None
        _ForkGeneration.sinks.add(self)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks; no resolution under way."""
        self._lock = threading.Lock()
        self._health._lock = threading.Lock()
        self._resolving = False

    # public -----------------------------------------------------------------

    def send(self, lines: t.Sequence[str]) -> None:
        """Send ``lines`` (one datagram where they fit). Never raises."""
        if not lines:
            return
        try:
            if self.transport == "udp":
                self._send_udp(lines)
            else:
                self._enqueue(lines)
        except Exception as exc:  # a bug here must not reach the request
            self._health.failure("send", exc, len(lines))

    def failure(self, kind: str, exc: BaseException | None, lost: int) -> None:
        """Count (and, at most once per interval, log) a failure of ``kind``."""
        self._health.failure(kind, exc, lost)

    def _with_report(self, lines: t.Sequence[str]) -> tuple[list[str], int]:
        """``lines`` plus the report of earlier losses, if any; and its count."""
        lost = self._health.unreported
        report = self.report
        if not lost or report is None:
            return list(lines), 0
        try:
            return [*lines, report(lost)], lost
        except Exception as exc:
            self._health.failure("format", exc, 0)
            return list(lines), 0

    def health(self) -> dict[str, int]:
        """Failure counts since start: by kind, and ``lines_dropped``."""
        return dict(self._health.totals)

    def close(self) -> None:
        """Close the socket and stop the sender thread (this process)."""
        self._closed = True
        self._wake.set()
        udp, self._udp = self._udp, None
        if udp is not None:
            udp.client.close()

    # UDP --------------------------------------------------------------------

    def _send_udp(self, lines: t.Sequence[str]) -> None:
        udp = self._udp
        if udp is None or udp.generation != _ForkGeneration.value:
            udp = self._open_udp()
            if udp is None:  # resolving, or waiting to retry
                self._health.failure("not connected", None, len(lines))
                return
        if self._health.unreported:
            lines, reporting = self._with_report(lines)
        else:
            reporting = 0
        payloads = self._pack(lines)
        last = len(payloads) - 1
        for n, payload in enumerate(payloads):
            try:
                send_datagram(udp, payload)
            except OSError as exc:  # BlockingIOError: the buffer is full
                kind = "buffer full" if isinstance(exc, BlockingIOError) else "send"
                lost = payload.count(b"\n") + 1 - (1 if reporting and n == last else 0)
                self._health.failure(kind, exc, lost)
            else:
                if reporting and n == last:  # the report is the last line
                    self._health.reported(reporting)

    def _open_udp(self) -> _Udp | None:
        generation = _ForkGeneration.value
        with self._lock:
            udp = self._udp
            if udp is not None and udp.generation == generation:
                return udp
            if udp is not None:  # the parent's socket: close this process's copy of it
                self._udp = None
                udp.client.close()
            if self._closed or self._clock() < self._retry_at:
                return None
            host = self._resolved
            if host is None:
                self._resolve_in_background(generation)
                return None
            try:
                client = _statsd().StatsClient(host, self.port, maxudpsize=self.max_udp_size, ipv6=self.ipv6)
                client._sock.setblocking(False)
                # Connected, as DogStatsD clients do: the kernel looks the
                # peer up once, and a peer that is not listening shows up as
                # a counted "send" failure (ECONNREFUSED) instead of silence.
                client._sock.connect(client._addr)
            except Exception as exc:
                self._retry_at = self._clock() + self.retry_after
                self._health.failure("connect", exc, 0)
                return None
            udp = self._udp = _Udp(generation, client._sock, client._addr, client)
            return udp

    def _resolve_in_background(self, generation: int) -> None:
        """Resolve the host name off the request path (called under the lock)."""
        if self._resolving and self._generation == generation:
            return
        self._resolving = True
        self._generation = generation
        threading.Thread(target=self._resolve, name="graywsgi-metrics-resolve", daemon=True).start()

    def _resolve(self) -> None:
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        try:
            info = socket.getaddrinfo(self.host, self.port, family, socket.SOCK_DGRAM)
            address = str(info[0][4][0])
        except Exception as exc:
            with self._lock:
                self._retry_at = self._clock() + self.retry_after
                self._resolving = False
            self._health.failure("resolve", exc, 0)
            return
        with self._lock:
            self._resolved = address
            self._resolving = False

    def _pack(self, lines: t.Sequence[str]) -> list[bytes]:
        limit = self.max_udp_size
        whole = "\n".join(lines).encode("ascii")
        if len(whole) <= limit:  # the usual case: one datagram
            return [whole]
        payloads = []
        payload = lines[0].encode("ascii")
        for line in lines[1:]:
            data = line.encode("ascii")
            if len(payload) + len(data) + 1 > limit:
                payloads.append(payload)
                payload = data
            else:
                payload += b"\n" + data
        payloads.append(payload)
        return payloads

    # TCP / Unix -------------------------------------------------------------

    def _enqueue(self, lines: t.Sequence[str]) -> None:
        if self._generation != _ForkGeneration.value or self._thread is None:
            self._start_sender()
        queue = self._queue
        room = self.queue_size - len(queue)
        if room < len(lines):
            self._health.failure("queue full", None, len(lines))
            return
        queue.extend(lines)
        self._wake.set()

    def _start_sender(self) -> None:
        generation = _ForkGeneration.value
        with self._lock:
            if self._generation == generation and self._thread is not None:
                return
            # After a fork the parent's thread is gone and its queue is not ours.
            self._generation = generation
            self._queue = collections.deque()
            self._wake = threading.Event()
            self._thread = threading.Thread(
                target=self._sender, args=(self._queue, self._wake), name="graywsgi-metrics-sender", daemon=True
            )
            self._thread.start()

    def _stream_client(self) -> t.Any:
        package = _statsd()
        if self.transport == "unix":
            return package.UnixSocketStatsClient(self.socket_path, timeout=self.timeout)
        return package.TCPStatsClient(self.host, self.port, timeout=self.timeout, ipv6=self.ipv6)

    def _sender(self, queue: collections.deque[str], wake: threading.Event) -> None:
        client: t.Any = None
        while not self._closed:
            wake.wait(1.0)
            wake.clear()
            batch: list[str] = []
            while queue:
                batch.append(queue.popleft())
            if not batch:
                continue
            if self._clock() < self._retry_at:
                self._health.failure("not connected", None, len(batch))
                continue
            lost = len(batch)
            try:
                batch, reporting = self._with_report(batch)
                if client is None:
                    client = self._stream_client()
                client._send("\n".join(batch))  # connects if needed; sendall + "\n"
                if reporting:
                    self._health.reported(reporting)
            except Exception as exc:
                if client is not None:
                    try:
                        client.close()
                    except Exception:  # pragma: no cover - closing a broken socket
                        pass
                client = None
                self._retry_at = self._clock() + self.retry_after
                self._health.failure("send", exc, lost)
        if client is not None:
            client.close()


# -- the middleware -----------------------------------------------------------


class Metrics(Pipeline):
    """Time and count every request in statsd; see the module docs.

    >>> import socket
    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    >>> server.bind(("127.0.0.1", 0))
    >>> app = Metrics(Response("ok"), port=server.getsockname()[1], tag_style="dogstatsd")
    >>> Client(app).get("/", buffered=True).status
    '200 OK'
    >>> server.recv(1432).decode().split(":")[0]
    'graywsgi.request'
    >>> server.close(); app.sink.close()

    :param app: the WSGI application to wrap (outermost: it times the rest).
    :param host: statsd host.
    :param port: statsd port.
    :param transport: ``"udp"`` (default), ``"tcp"`` or ``"unix"``.
    :param socket_path: the stream socket's path for ``"unix"``.
    :param prefix: first part of every metric name.
    :param tag_style: ``"statsd"``, ``"dogstatsd"``, ``"influx"`` or a
        :class:`TagStyle`.
    :param tags: constant tags added to every line (``{"service": "shop"}``).
    :param trace_sample_rate: fraction of requests whose timer carries a
        ``trace_id`` tag (0 to 1, default 0.01).
    :param max_values: distinct values kept per dimension per process.
    :param max_value_length: longest tag value, in characters.
    :param sink: where lines go; a :class:`StatsdSink` built from the
        transport options if omitted (``sink_options`` are passed to it).
    :param sampler: ``sampler()`` -> a float in [0, 1), for trace sampling.
    :param listeners: :class:`MetricsListener` instances to bind to this
        layer (made before it, for a Guard inside it).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 8125,
        transport: str = "udp",
        socket_path: str | None = None,
        prefix: str = "graywsgi",
        tag_style: str | TagStyle = "statsd",
        tags: t.Mapping[str, str] | None = None,
        trace_sample_rate: float = 0.01,
        max_values: int = 100,
        max_value_length: int = 64,
        sink: StatsdSink | None = None,
        sampler: t.Callable[[], float] = random.random,
        listeners: t.Sequence[MetricsListener] = (),
        **sink_options: t.Any,
    ) -> None:
        Pipeline.__init__(self, app)
        if isinstance(tag_style, str):
            style_class = TAG_STYLES.get(tag_style)
            if style_class is None:
                raise ConfigurationError(f"tag_style must be one of {sorted(TAG_STYLES)} or a TagStyle, got {tag_style!r}")
            self.style: TagStyle = style_class()
        elif isinstance(tag_style, TagStyle):
            self.style = tag_style
        else:
            raise ConfigurationError(f"tag_style must be a name or a TagStyle, got {tag_style!r}")
        if not isinstance(prefix, str) or len(prefix) > 100 or not all(
            _NAME_PART.fullmatch(part) for part in prefix.split(".")
        ):
            raise ConfigurationError(
                f"prefix must be dot-separated parts of A-Z a-z 0-9 _ - (at most 100 characters), got {prefix!r}"
            )
        for name, value in (("max_values", max_values), ("max_value_length", max_value_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        constant: list[tuple[str, str]] = []
        for key, text in (tags or {}).items():
            if not isinstance(key, str) or _UNSAFE_TAG_KEY.search(key) or not key or not isinstance(text, str):
                raise ConfigurationError(f"tags: {key!r}: keys must be A-Z a-z 0-9 _ . - and values str")
            constant.append((key, self.style.sanitize(text, max_value_length)))
        if sink is None:
            sink = StatsdSink(host=host, port=port, transport=transport, socket_path=socket_path, **sink_options)
        elif sink_options:
            raise ConfigurationError(f"pass {sorted(sink_options)} to the StatsdSink, not to Metrics")
        self.sink = sink
        if sink.report is None:
            sink.report = self._dropped_line
        self.prefix = prefix
        self.constant_tags = tuple(constant)
        self._trace_sample_rate = 0.0
        self.max_values = max_values
        self.max_value_length = max_value_length
        self._sampler = sampler
        self._dimensions: dict[str, _Dimension] = {}
        self._dimension_lock = threading.Lock()
        self._fragments: dict[tuple[str, ...], str] = {}
        self._request_templates: dict[tuple[str, ...], tuple[str, str] | str] = {}
        self._decision_lines: dict[tuple[str, ...], str] = {}
        # The same, found by the raw (unsanitised) values.
        self._raw_templates: dict[tuple[str | None, ...], tuple[str, str] | str] = {}
        self._raw_decision_lines: dict[tuple[str | None, ...], str] = {}
        self._request_name = f"{prefix}.request"
        self._decision_name = f"{prefix}.decision"
        self._degraded_name = f"{prefix}.extraction.degraded"
        self._route = self._dimension("route")
        self._group = self._dimension("group")
        self._version = self._dimension("version")
        self._reason = self._dimension("reason")
        self._rule = self._dimension("rule")
        self._levels = {level: self._fragment((("level", level.name),)) for level in DegradeLevel if level}
        for listener in listeners:
            if not isinstance(listener, MetricsListener):
                raise ConfigurationError(f"listeners must be MetricsListener instances, got {listener!r}")
            listener.metrics = self
        self._step = MetricsStep(self, _ForkGeneration)
        self.trace_sample_rate = trace_sample_rate
        self._fuse()

    @property
    def trace_sample_rate(self) -> float:
        """The fraction of requests whose timer carries a ``trace_id`` tag
        (0 for a style that writes no trace ids); settable."""
        return self._trace_sample_rate

    @trace_sample_rate.setter
    def trace_sample_rate(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigurationError(f"trace_sample_rate must be from 0 to 1, got {rate!r}")
        self._trace_sample_rate = float(rate) if self.style.trace_ids else 0.0
        self._step.trace_sample_rate = self._trace_sample_rate

    _stage = METRICS

    # counting outside a request --------------------------------------------

    def count(self, name: str, value: int = 1, **tags: str) -> None:
        """Send one counter now (``<prefix>.<name>``). Never raises."""
        self._send_one(name, f"{value}|c", tags)

    def gauge(self, name: str, value: float, **tags: str) -> None:
        """Send one gauge now (``<prefix>.<name>``, ``value`` >= 0). Never raises."""
        self._send_one(name, f"{max(0.0, value):g}|g", tags)

    def health(self) -> dict[str, int]:
        """What went wrong so far: failure counts by kind and ``lines_dropped``."""
        return self.sink.health()

    # internals --------------------------------------------------------------

    def _dimension(self, key: str) -> _Dimension:
        dimension = self._dimensions.get(key)
        if dimension is None:
            with self._dimension_lock:
                dimension = self._dimensions.get(key)
                if dimension is None:
                    if len(self._dimensions) >= 64:
                        raise ValueError(f"too many distinct tag keys; {key!r} not added")
                    dimension = _Dimension(self.style, self.max_values, self.max_value_length)
                    self._dimensions[key] = dimension
        return dimension

    def _fragment(self, tags: t.Sequence[tuple[str, str]]) -> str:
        key = tuple(value for pair in tags for value in pair)
        fragment = self._fragments.get(key)
        if fragment is None:
            fragment = self.style.fragment((*tags, *self.constant_tags))
            if len(self._fragments) < 4096:
                self._fragments[key] = fragment
        return fragment

    def _event_line(self, name: str, value: str, tags: t.Mapping[str, str]) -> str:
        pairs = tuple(
            (sanitize_name(key, 64).replace(".", "_"), self._dimension(key).get(str(raw)))
            for key, raw in sorted(tags.items())
        )
        return self.style.line(f"{self.prefix}.{sanitize_name(name)}", value, self._fragment(pairs))

    def _send_one(self, name: str, value: str, tags: t.Mapping[str, str]) -> None:
        try:
            lines = [self._event_line(name, value, tags)]
        except Exception as exc:
            self.sink.failure("format", exc, 1)
            return
        self.sink.send(lines)

    def _dropped_line(self, lost: int) -> str:
        return self.style.line(f"{self.prefix}.metrics.dropped", f"{lost}|c", self._fragment(()))

    def send_lines(
        self,
        environ: WSGIEnvironment,
        events: list[tuple[str, dict[str, str]]],
        elapsed_ms: float,
        status: int | None,
        raised: bool,
        sampled: bool,
    ) -> None:
        """Send one request's lines, built one by one (see :mod:`graywsgi.metrics.step`
        for the usual request's datagram, made once).

        :param sampled: whether this request's timer carries a ``trace_id``.
        """
        try:
            lines = self._lines(environ, events, elapsed_ms, status, raised, sampled)
        except Exception as exc:
            self.sink.failure("format", exc, 1)
            return
        self.sink.send(lines)

    def datagram_template(
        self,
        route: str | None,
        group: str | None,
        version: str | None,
        status: str,
        method: str,
        reason: str | None,
        rule: str | None,
    ) -> tuple[bytes, bytes, int] | None:
        """The usual request's datagram around its time: ``(head, tail,
        lines)``, so that the datagram is ``head + b"%.3f" % ms + tail``;
        ``None`` for a style whose timer line cannot be templated."""
        template = self._request_template_for((route, group, version, status, method))
        if template.__class__ is not tuple:
            return None
        head, tail = template
        lines = [f"|ms{tail}"]
        if route is not None:
            lines.append(self._decision_line_for(route, group, reason, rule))
        return head.encode("ascii"), "\n".join(lines).encode("ascii"), len(lines)

    def _lines(
        self,
        environ: WSGIEnvironment,
        events: list[tuple[str, dict[str, str]]],
        elapsed_ms: float,
        status: int | None,
        raised: bool,
        sampled: bool,
    ) -> list[str]:
        context = environ.get(ENVIRON_KEY)
        if not isinstance(context, GrayContext):
            context = None
        if context is None:
            raw_route = raw_group = raw_version = None  # each dimension writes None as "none"
        else:
            raw_route, raw_group, raw_version = context.route, context.group, context.version
        raw_key = (raw_route, raw_group, raw_version, status_class(status, raised), method_tag(environ))
        if sampled and context is not None:
            key = self._request_key(raw_key)
            trace = context.trace_parent
            trace_id = trace[3:35] if trace is not None else context.request_id
            style = self.style
            fragment = style.fragment(
                (*zip(_REQUEST_TAGS, key), *self.constant_tags, ("trace_id", style.sanitize(trace_id, self.max_value_length)))
            )
            lines = [style.line(self._request_name, f"{elapsed_ms:.3f}|ms", fragment)]
        else:
            template = self._request_template_for(raw_key)
            if template.__class__ is tuple:
                lines = [f"{template[0]}{elapsed_ms:.3f}|ms{template[1]}"]
            else:  # a style whose lines cannot be templated
                lines = [self.style.line(self._request_name, f"{elapsed_ms:.3f}|ms", t.cast(str, template))]
        if context is not None:
            reason_text = context.route_reason
            if raw_route is not None:
                decision = environ.get(DECISION_KEY)
                raw_rule = getattr(decision, "rule", None) if decision is not None else None
                lines.append(self._decision_line_for(raw_route, raw_group, reason_text, raw_rule))
            level = context.degrade_level
            if level:
                lines.append(self.style.line(self._degraded_name, "1|c", self._levels[level]))
            # Internal errors that the layers leave a trace of without a hook
            # (counted once, also when the layer has the hook as well).
            layer = None
            if reason_text == "error":
                layer = "router"
            elif reason_text == "rerouted: guard error":
                layer = "guard"
            elif level is DegradeLevel.L2 and not context.dropped:
                layer = "extraction"  # a real L2 lists its failures; failing open lists none
            if layer is not None and not any(
                event == "internal_error" and tags.get("layer") == layer for event, tags in events
            ):
                events.append(("internal_error", {"layer": layer}))
        for event, event_tags in events:
            lines.append(self._event_line(event, "1|c", event_tags))
        return lines

    def _request_template_for(self, raw_key: tuple[str | None, ...]) -> tuple[str, str] | str:
        """The timer line's template for these raw tag values (cached: most
        requests repeat a few raw combinations, found without sanitising them again)."""
        template = self._raw_templates.get(raw_key)
        if template is None:
            key = self._request_key(raw_key)
            template = self._request_templates.get(key)
            if template is None:
                template = self._request_template(key)
            if len(self._raw_templates) < self._CACHE_LIMIT:
                self._raw_templates[raw_key] = template
        return template

    def _decision_line_for(self, route: str, group: str | None, reason: str | None, rule: str | None) -> str:
        """The decision counter's line for these raw values (cached as the timer's template is)."""
        raw_decision = (route, group, reason, rule)
        line = self._raw_decision_lines.get(raw_decision)
        if line is None:
            decision_key = (
                self._route.get(route),
                self._group.get(group),
                self._reason.get(reason if reason is not None else "split"),
                self._rule.get(rule),
            )
            line = self._decision_lines.get(decision_key)
            if line is None:
                line = self._decision_line(decision_key)
            if len(self._raw_decision_lines) < self._CACHE_LIMIT:
                self._raw_decision_lines[raw_decision] = line
        return line

    # Combinations of bounded dimensions are cached, up to this many; past
    # it, lines are built each time.
    _CACHE_LIMIT = 4096

    def _request_key(self, raw_key: tuple[str | None, ...]) -> tuple[str, ...]:
        """The request line's tag values: route, group and version sanitised
        and capped by their dimensions; status class and method as they are."""
        raw_route, raw_group, raw_version, status_class, method = raw_key
        return (
            self._route.get(raw_route),
            self._group.get(raw_group),
            self._version.get(raw_version),
            t.cast(str, status_class),
            t.cast(str, method),
        )

    def _request_template(self, key: tuple[str, ...]) -> tuple[str, str] | str:
        """The request line around its value, ``(head, tail)``; or the
        fragment, for a style that does not write the value exactly once."""
        fragment = self.style.fragment((*zip(_REQUEST_TAGS, key), *self.constant_tags))
        head, found, tail = self.style.line(self._request_name, "\x00", fragment).partition("\x00")
        template: tuple[str, str] | str = (head, tail) if found and "\x00" not in tail else fragment
        if len(self._request_templates) < self._CACHE_LIMIT:
            self._request_templates[key] = template
        return template

    def _decision_line(self, key: tuple[str, ...]) -> str:
        fragment = self.style.fragment((*zip(_DECISION_TAGS, key), *self.constant_tags))
        line = self.style.line(self._decision_name, "1|c", fragment)
        if len(self._decision_lines) < self._CACHE_LIMIT:
            self._decision_lines[key] = line
        return line


class MetricsListener(BreakerListener):
    """Breaker and rollback events as metrics. Pass it to the Guard.

    The Guard sits inside the :class:`Metrics` layer, so the listener is
    usually made first and handed to ``Metrics(listeners=...)``, which binds
    it; events before that are not sent:

    .. code-block:: python

        listener = MetricsListener()
        guard = Guard(listeners=[listener])
        app.wsgi_app = Metrics(Extraction(Router(app.wsgi_app, "rules.yaml", guard=guard)),
                               tag_style="dogstatsd", listeners=[listener])

    - a trip: ``<prefix>.breaker.trip`` +1, tag ``route`` (once per trip, in
      the worker that tripped);
    - every state change: gauge ``<prefix>.breaker.state`` (0 closed,
      1 half-open, 2 open), tag ``route``;
    - :meth:`on_rollback` / :meth:`on_resume`: ``<prefix>.rollback`` /
      ``<prefix>.resume`` +1.

    :param metrics: the :class:`Metrics` whose sink and style to use; or
        ``None``, to be bound by ``Metrics(listeners=[...])``.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        if metrics is not None and not isinstance(metrics, Metrics):
            raise ConfigurationError(f"metrics must be a graywsgi.metrics.layer.Metrics, got {metrics!r}")
        self.metrics = metrics

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.count("breaker.trip", route=route)

    def on_state_change(self, route: str, old: BreakerState, new: BreakerState, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.gauge("breaker.state", _BREAKER_GAUGE.get(new, 0), route=route)

    def on_rollback(self, reason: str = "") -> None:
        """The kill switch was set: the Guard calls this in every worker that
        sees it, so ``rollback`` counts once per worker per rollback."""
        if self.metrics is not None:
            self.metrics.count("rollback")

    def on_resume(self, reason: str = "") -> None:
        """The kill switch was cleared."""
        if self.metrics is not None:
            self.metrics.count("resume")
