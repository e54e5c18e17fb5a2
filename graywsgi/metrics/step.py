"""
Metrics' step
=============

:class:`MetricsStep` is :class:`~graywsgi.metrics.layer.Metrics`' step in the
request path (:mod:`graywsgi.layers.pipeline`): it notes the time when a request
enters, and when its response is closed it sends the request's lines -- the
timer, and the decision counter when a split or the Router chose a route --
as one UDP datagram. What is sent is documented with :mod:`graywsgi.metrics.layer`.

The usual request (no event noted, extraction not degraded, no trace id
sampled) sends a datagram made once per combination of route, A/B group,
version, status class, method, reason and rule: only the time is written
into it per request. Every other request goes through
:meth:`graywsgi.metrics.layer.Metrics.send_lines`, which builds its lines one by
one. Both give the same bytes for the same request. This module is compiled
by Cython when the fast path is built (:mod:`graywsgi.speedups`).
"""

from __future__ import annotations

import _socket
import socket
import time
import typing as t

from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.layers.events import EVENTS_KEY
from graywsgi.layers.pipeline import TimingStep

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from graywsgi.layers.pipeline import Exchange

__all__ = ["MetricsStep", "EVENTS_KEY", "DECISION_KEY", "status_class", "method_tag", "send_datagram", "timed_datagram"]

#: environ key of the Router's decision (see :mod:`graywsgi.layers.router`).
DECISION_KEY = "graywsgi.decision"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
#: Route reasons whose requests also count an internal error (see Metrics.send_lines).
_ERROR_REASONS = frozenset({"error", "rerouted: guard error"})
_ROUTE = GrayContext._fields.index("route")  # route, group, rules_version, route_reason follow
_VERSION = GrayContext._fields.index("version")
_LEVEL = GrayContext._fields.index("degrade_level")
_perf_counter = time.perf_counter
_SOCKET = socket.socket
#: ``sock.fileno()`` for a socket.socket, without looking the method up along
#: the class's bases on every call (-1 once the socket is closed, as the method gives).
_FILENO = _socket.socket.fileno


def status_class(status: int | None, raised: bool) -> str:
    """The ``status`` tag: ``2xx`` ... ``5xx`` (a raise is ``5xx``), ``none`` or ``other``."""
    if raised:
        return "5xx"
    if status is None:
        return "none"
    return _STATUS_CLASSES.get(status // 100, "other")


def method_tag(environ: WSGIEnvironment) -> str:
    """The ``method`` tag: one of the nine standard methods, else ``other``."""
    method = environ.get("REQUEST_METHOD")
    return method if method in _METHODS else "other"


def send_datagram(udp: t.Any, payload: bytes) -> None:
    """Send ``payload`` on the sink's UDP socket (``udp``: its ``sock`` and
    ``address``); an error is raised as ``socket.send`` raises it.

    The socket is connected to the address: a real one sends without it
    (compiled, straight from C); anything else standing in for a socket is
    given the address, as ``sendto``.
    """
    sock = udp.sock
    if type(sock) is _SOCKET:
        if cython.compiled:
            _capi.send_datagram(_FILENO(sock), payload)
        else:
            sock.send(payload)
    else:
        sock.sendto(payload, udp.address)


def timed_datagram(head: bytes, milliseconds: float, tail: bytes) -> bytes:
    """``head + b"%.3f" % milliseconds + tail``: a templated datagram with
    its time (compiled: one allocation, the usual times formatted as integers)."""
    if cython.compiled:
        return _capi.timed_line(head, milliseconds, tail)
    return head + b"%.3f" % milliseconds + tail


class MetricsStep(TimingStep):
    """Times a request and sends its datagram when the response ends.

    :param metrics: the layer: its style, dimensions and sink.
    """

    def __init__(self, metrics: t.Any, fork_generation: t.Any) -> None:
        # ``metrics`` is the graywsgi.metrics.layer.Metrics that builds this
        # step; not imported even for its type, as that module imports this one.
        self.metrics = metrics
        self.sink = metrics.sink
        self.health = metrics.sink._health
        self.max_udp_size = metrics.sink.max_udp_size
        self.trace_sample_rate = metrics.trace_sample_rate
        self.sampler = metrics._sampler
        #: Carries ``value``, bumped in a child after a fork (sockets are per process).
        self.fork_generation = fork_generation
        #: (route, group, version, status, method, reason, rule) -> (head, tail,
        #: lines) of the request's datagram around its time, or ``None`` for a
        #: combination that is built each time.
        self.datagrams: dict[tuple[t.Any, ...], tuple[bytes, bytes, int] | None] = {}

    def begin(self, exchange: Exchange, environ: WSGIEnvironment) -> None:
        """The clock starts; layers may note events from now on."""
        exchange.started = _capi.monotonic_now() if cython.compiled else _perf_counter()
        events: list[tuple[str, dict[str, str]]] = []
        environ[EVENTS_KEY] = events
        exchange.events = events
        exchange.environ = environ
        exchange.finishing = True

    def finish(self, exchange: Exchange, raised: bool) -> None:
        """The response ended: send its datagram."""
        now = _capi.monotonic_now() if cython.compiled else _perf_counter()
        elapsed_ms = (now - exchange.started) * 1000.0
        metrics = self.metrics
        environ: WSGIEnvironment = exchange.environ  # type: ignore[assignment]  # set by begin()
        events: list[tuple[str, dict[str, str]]] = exchange.events  # type: ignore[assignment]
        status = exchange.code
        context = environ.get(ENVIRON_KEY)
        if not isinstance(context, GrayContext):
            context = None
        rate = self.trace_sample_rate
        sampled = bool(rate) and context is not None and self.sampler() < rate
        if not events and not sampled:
            if context is None:
                key: tuple[t.Any, ...] = (None, None, None, status_class(status, raised), method_tag(environ), None, None)
                usual = True
            else:
                if cython.compiled and type(context) is GrayContext:  # fields without the descriptor calls
                    route = _capi.item(context, _ROUTE)
                    group = _capi.item(context, _ROUTE + 1)
                    reason = _capi.item(context, _ROUTE + 3)
                    version = _capi.item(context, _VERSION)
                    level = _capi.item(context, _LEVEL)
                else:
                    route, group, reason = context.route, context.group, context.route_reason
                    version, level = context.version, context.degrade_level
                usual = not level and reason not in _ERROR_REASONS
                decision = environ.get(DECISION_KEY) if route is not None else None
                key = (route, group, version, status_class(status, raised), method_tag(environ), reason,
                       getattr(decision, "rule", None) if decision is not None else None)
            if usual:
                datagram = self.datagrams.get(key, False)
                if datagram is False:
                    datagram = self.datagram(key)
                if datagram is not None:
                    head, tail, lines = datagram  # type: ignore[misc]
                    self.send(timed_datagram(head, elapsed_ms, tail), lines)
                    return
        metrics.send_lines(environ, events, elapsed_ms, status, raised, sampled)

    def datagram(self, key: tuple[t.Any, ...]) -> tuple[bytes, bytes, int] | None:
        """The datagram of ``key``'s requests around their time (cached)."""
        try:
            made: tuple[bytes, bytes, int] | None = self.metrics.datagram_template(*key)
        except Exception:  # a style that raises: the general path fails too, and counts it
            return None
        if len(self.datagrams) < self.metrics._CACHE_LIMIT:
            self.datagrams[key] = made
        return made

    def send(self, payload: bytes, lines: int) -> None:
        """Send one datagram of ``lines`` lines; never raises."""
        sink = self.sink
        udp = sink._udp
        if (
            udp is None
            or udp.generation != self.fork_generation.value
            or self.health.unreported
            or len(payload) > self.max_udp_size
        ):
            sink.send(payload.decode("ascii").split("\n"))  # opens the socket, reports losses, splits
            return
        try:
            send_datagram(udp, payload)
        except OSError as exc:  # BlockingIOError: the buffer is full
            sink.failure("buffer full" if isinstance(exc, BlockingIOError) else "send", exc, lines)
        except Exception as exc:  # a bug here must not reach the request
            sink.failure("send", exc, lines)
