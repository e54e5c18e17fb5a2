"""
Metrics' statsd sink
====================

:class:`StatsdSink` sends the lines of :class:`~graywsgi.metrics.layer.Metrics`
(written by :mod:`graywsgi.metrics.lines` in a style of
:mod:`graywsgi.metrics.tags`) to a statsd server, counts what it could not
send, and keeps its sockets and sender thread per process.

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
lost lines are counted (:meth:`~graywsgi.metrics.layer.Metrics.health`; and sent as
``<prefix>.metrics.dropped`` with the next datagram that goes out) and
logged on the ``graywsgi.metrics`` logger at most once per
``error_interval`` seconds.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import ipaddress
import logging
import os
import socket
import threading
import time
import typing as t
import weakref

from graywsgi.errors import ConfigurationError
from graywsgi.metrics.step import send_datagram

__all__ = ["StatsdSink"]

logger = logging.getLogger("graywsgi.metrics")


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
        #: set by :class:`~graywsgi.metrics.layer.Metrics`. Sent with the next
        #: datagram that goes out.
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
