"""
Mirror
======

Traffic mirroring for :class:`~graywsgi.evolution.stages.ProtocolEvolution`: a
share of the requests the application serves is also sent to a *shadow*
(the new version: a WSGI app in this process, or an upstream URL through
:class:`~graywsgi.httputil.proxy.UpstreamProxy`), in the background, and the two
answers are compared. The shadow's answer is discarded; only the
comparison is kept.

.. code-block:: python

    from graywsgi.evolution.mirror import Mirror

    mirror = Mirror("http://orders-v2.internal:8000", share=0.05,
                    ignore_fields=("request_id", "meta.generated_at"))

The request's two sides are captured by :mod:`graywsgi.evolution.mirror_capture`
(what the client sees, what the shadow gets) and compared by
:mod:`graywsgi.evolution.mirror_diff`; this module holds the mirror itself:
sampling, the request body, the background pool, the counters and the report.

Request bodies
--------------

A mirrored request's body (``CONTENT_LENGTH`` bytes, at most ``max_body``)
is read once, and the application gets an identical in-memory stream in
``wsgi.input`` with the same ``CONTENT_LENGTH``. A larger body, a chunked
body (a ``Transfer-Encoding`` header) or an invalid length is not read at all: the
request is served untouched and not mirrored (``skipped_body``).

Comparison
----------

The two answers are compared by
:func:`~graywsgi.evolution.mirror_diff.compare_responses` (status, the
``compare_headers``, the body with the ``ignore_fields`` left out).
Differences are counted (``different``, and ``differences`` by kind:
``status``, ``header``, ``body``), the first ``log_samples`` per process
logged at WARNING on the ``graywsgi.mirror`` logger, and the latest
``keep_samples`` kept in :meth:`Mirror.report` for the admin page and the
rollout gates.

Processes and shutdown
----------------------

Nothing starts when the mirror is built. The queue, the lock and the
worker threads belong to a process id and are created on the first
mirrored request in the process that serves it; a gunicorn worker forked
after the app was built (``preload_app``) starts its own pool and its own
counters, so :meth:`Mirror.report` is per process. When the pool starts, an
:mod:`atexit` hook is registered that calls :meth:`Mirror.close` with
``close_timeout``: the queue is drained for at most that long, and what is
left is dropped and counted (``dropped_at_close``). Worker threads are
daemons and never keep a process alive.
"""

from __future__ import annotations

import atexit
import collections
import io
import logging
import os
import queue
import random
import sys
import threading
import time
import typing as t

from graywsgi.errors import ConfigurationError
from graywsgi.evolution.mirror_capture import _MIRROR_KEY, MIRROR_HEADER, _call, _Job, _snapshot, _Tee
from graywsgi.evolution.mirror_diff import Captured, compare_responses
from graywsgi.httputil.proxy import UpstreamProxy

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MIRROR_HEADER", "Captured", "Mirror", "compare_responses"]

logger = logging.getLogger("graywsgi.mirror")

_COUNTERS = (
    "mirrored",
    "compared",
    "equal",
    "different",
    "dropped_queue_full",
    "dropped_at_close",
    "skipped_body",
    "body_not_compared",
    "shadow_errors",
)


_STOP = object()


class _Process:
    """Everything a mirror owns in one process: made there, used only there."""

    def __init__(self, pid: int, queue_size: int, keep_samples: int) -> None:
        self.pid = pid
        self.lock = threading.Lock()
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.threads: list[threading.Thread] = []
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.differences: collections.Counter[str] = collections.Counter()
        self.samples: collections.deque[dict[str, t.Any]] = collections.deque(maxlen=keep_samples)
        self.logged = 0
        self.closed = False

    def count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counts[name] += by


class Mirror:
    """Send a share of served requests to a shadow, compare the answers.

    >>> def shadow(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"ok"]
    >>> mirror = Mirror(shadow, share=0.5)
    >>> mirror.report()["mirrored"]
    0

    :param shadow: a WSGI application, or the base URL of an upstream
        (``http://host:port[/prefix]``), called through an
        :class:`~graywsgi.httputil.proxy.UpstreamProxy`.
    :param share: the fraction of eligible requests mirrored, 0 to 1.
    :param methods: the methods that may be mirrored.
    :param workers: background threads per process.
    :param queue_size: mirror jobs waiting per process; past it they are
        dropped.
    :param max_body: largest request body copied, in bytes.
    :param max_response: largest response body captured for comparison.
    :param compare_headers: response headers compared.
    :param ignore_fields: JSON fields left out of the body comparison.
    :param log_samples: differences logged per process (then only counted).
    :param keep_samples: latest differences kept for :meth:`report`.
    :param timeout: seconds an upstream shadow may take (URL shadows only).
    :param close_timeout: how long the exit hook drains the queue.
    :param sample: the random source (``random.random``), for tests.
    """

    def __init__(
        self,
        shadow: WSGIApplication | str,
        *,
        share: float = 1.0,
        methods: t.Iterable[str] = ("GET", "HEAD"),
        workers: int = 2,
        queue_size: int = 64,
        max_body: int = 64 * 1024,
        max_response: int = 256 * 1024,
        compare_headers: t.Iterable[str] = ("Content-Type",),
        ignore_fields: t.Iterable[str] = (),
        log_samples: int = 20,
        keep_samples: int = 10,
        timeout: float = 5.0,
        close_timeout: float = 2.0,
        sample: t.Callable[[], float] = random.random,
    ) -> None:
        if isinstance(shadow, str):
            self.shadow: WSGIApplication = UpstreamProxy(shadow, timeout=timeout, name="mirror-shadow")
            self.shadow_label = shadow
        elif callable(shadow):
            self.shadow = shadow
            self.shadow_label = getattr(shadow, "__name__", type(shadow).__name__)
        else:
            raise ConfigurationError(f"shadow must be a WSGI app or an upstream URL, got {shadow!r}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigurationError(f"share must be a number from 0 to 1, got {share!r}")
        for option, value, least in (
            ("workers", workers, 1),
            ("queue_size", queue_size, 1),
            ("max_body", max_body, 0),
            ("max_response", max_response, 0),
            ("log_samples", log_samples, 0),
            ("keep_samples", keep_samples, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigurationError(f"{option} must be an int >= {least}, got {value!r}")
        if isinstance(close_timeout, bool) or not isinstance(close_timeout, (int, float)) or close_timeout < 0:
            raise ConfigurationError(f"close_timeout must be a number >= 0, got {close_timeout!r}")
        self.share = float(share)
        self.methods = frozenset(method.upper() for method in methods)
        self.workers = workers
        self.queue_size = queue_size
        self.max_body = max_body
        self.max_response = max_response
        self.compare_headers = tuple(compare_headers)
        self.ignore_fields = frozenset(ignore_fields)
        self.log_samples = log_samples
        self.keep_samples = keep_samples
        self.close_timeout = float(close_timeout)
        self.sample = sample
        # pid -> per-process state, created on first use in that process.
        self._processes: dict[int, _Process] = {}

    def __repr__(self) -> str:
        return f"Mirror({self.shadow_label!r}, share={self.share})"

    def __getstate__(self) -> dict[str, t.Any]:
        state = self.__dict__.copy()
        state["_processes"] = {}
        return state

    # -- per process -----------------------------------------------------

    def _process(self) -> _Process:
        pid = os.getpid()
        process = self._processes.get(pid)
        if process is None:
            # setdefault is atomic: racing first requests share one state.
            process = self._processes.setdefault(pid, _Process(pid, self.queue_size, self.keep_samples))
            for owner in list(self._processes):
                if owner != pid:
                    self._processes.pop(owner, None)  # a parent's: its threads did not survive fork
        return process

    def _start(self, process: _Process) -> None:
        with process.lock:
            if process.threads or process.closed:
                return
            for number in range(self.workers):
                thread = threading.Thread(
                    target=self._work, args=(process,), name=f"graywsgi-mirror-{number}", daemon=True
                )
                thread.start()
                process.threads.append(thread)
        atexit.register(self._at_exit, process.pid)

    def _at_exit(self, pid: int) -> None:
        if pid == os.getpid():
            self.close(self.close_timeout)

    @property
    def pool_pid(self) -> int | None:
        """The process id whose pool is running here, or ``None`` if none has started."""
        process = self._processes.get(os.getpid())
        return process.pid if process is not None and process.threads else None

    # -- request path ----------------------------------------------------

    def wants(self, environ: WSGIEnvironment) -> bool:
        """Whether this request is eligible and sampled (never a mirror request)."""
        if environ.get(_MIRROR_KEY) or environ.get("REQUEST_METHOD", "GET") not in self.methods:
            return False
        return self.share >= 1.0 or (self.share > 0.0 and self.sample() < self.share)

    def serve(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        shadow_path: str,
    ) -> t.Iterable[bytes]:
        """Serve the request with ``app``; mirror it to the shadow at ``shadow_path``.

        The caller decided the request is mirrored (:meth:`wants`). Any
        problem in the mirroring itself is logged and the request served
        as if it were not mirrored.
        """
        try:
            process = self._process()
            body = self._copy_body(environ, process)
            if body is None:
                return app(environ, start_response)
            snapshot = _snapshot(environ, shadow_path)
        except Exception:
            logger.exception("graywsgi mirror failed; request served without mirroring")
            return app(environ, start_response)
        return _Tee(self, process, app, environ, start_response, _Job(snapshot, body, Captured(None, (), None)))

    def _copy_body(self, environ: WSGIEnvironment, process: _Process) -> bytes | None:
        raw = environ.get("CONTENT_LENGTH") or ""
        if "HTTP_TRANSFER_ENCODING" in environ:  # chunked: its length is unknown in advance
            process.count("skipped_body")
            return None
        if not raw:
            return b""
        if not raw.isdigit() or int(raw) > self.max_body:
            process.count("skipped_body")
            return None
        length = int(raw)
        body = environ["wsgi.input"].read(length) if length else b""
        # The app gets exactly what the client sent, in a stream of its own.
        environ["wsgi.input"] = io.BytesIO(body)
        if len(body) != length:
            process.count("skipped_body")  # the client sent less; the app sees the same
            return None
        return bytes(body)

    def submit(self, process: _Process, job: _Job) -> None:
        if process.pid != os.getpid() or process.closed:
            return
        if not process.threads:
            self._start(process)
        try:
            process.queue.put_nowait(job)
        except queue.Full:
            process.count("dropped_queue_full")
        else:
            process.count("mirrored")

    # -- background ------------------------------------------------------

    def _work(self, process: _Process) -> None:
        while True:
            job = process.queue.get()
            try:
                if job is _STOP:
                    return
                self._run(process, t.cast(_Job, job))
            except Exception:
                logger.exception("graywsgi mirror job failed")
            finally:
                process.queue.task_done()

    def _run(self, process: _Process, job: _Job) -> None:
        environ = dict(job.environ)
        environ["wsgi.input"] = io.BytesIO(job.body)
        environ["wsgi.errors"] = sys.stderr
        try:
            shadow = _call(self.shadow, environ, self.max_response)
        except Exception as exc:  # noqa: BLE001 - a failing shadow is counted, never raised
            process.count("shadow_errors")
            logger.info("graywsgi mirror: shadow %s failed: %r", self.shadow_label, exc)
            return
        differences = compare_responses(
            job.primary, shadow, headers=self.compare_headers, ignore_fields=self.ignore_fields
        )
        body_skipped = job.primary.body is None or shadow.body is None
        log = False
        with process.lock:
            process.counts["compared"] += 1
            if body_skipped:
                process.counts["body_not_compared"] += 1
            if not differences:
                process.counts["equal"] += 1
                return
            process.counts["different"] += 1
            for kind, _ in differences:
                process.differences[kind] += 1
            sample = {
                "method": environ.get("REQUEST_METHOD", ""),
                "path": environ.get("PATH_INFO", ""),
                "query": environ.get("QUERY_STRING", ""),
                "differences": [text for _, text in differences[:10]],
                "at": time.time(),
            }
            process.samples.append(sample)
            if process.logged < self.log_samples:
                process.logged += 1
                log = True
        if log:
            logger.warning(
                "graywsgi mirror: %s %s differs from shadow %s: %s",
                sample["method"], sample["path"], self.shadow_label, "; ".join(sample["differences"]),
            )

    # -- reporting and shutdown -------------------------------------------

    def report(self) -> dict[str, t.Any]:
        """This process's counters, differences by kind and latest samples.

        Keys: every counter (``mirrored``, ``compared``, ``equal``,
        ``different``, ``dropped_queue_full``, ``dropped_at_close``,
        ``skipped_body``, ``body_not_compared``, ``shadow_errors``),
        ``differences`` (by kind), ``samples``, ``queued``, ``share``,
        ``shadow``, ``pid``.
        """
        process = self._processes.get(os.getpid())
        if process is None:
            counts: dict[str, t.Any] = dict.fromkeys(_COUNTERS, 0)
            counts.update(differences={}, samples=[], queued=0)
        else:
            with process.lock:
                counts = dict(process.counts)
                counts.update(
                    differences=dict(process.differences),
                    samples=[dict(sample) for sample in process.samples],
                    queued=process.queue.qsize(),
                )
        counts.update(share=self.share, shadow=self.shadow_label, pid=os.getpid())
        return counts

    def close(self, timeout: float = 2.0) -> bool:
        """Stop this process's pool: drain the queue for at most ``timeout`` seconds.

        Jobs still queued after that are dropped and counted
        (``dropped_at_close``); a job running in a worker is left to finish
        on its daemon thread. The mirror takes no new jobs afterwards in
        this process.

        :return: whether the queue was drained and the workers stopped in time.
        """
        process = self._processes.get(os.getpid())
        if process is None:
            return True
        with process.lock:
            process.closed = True
            threads = list(process.threads)
        deadline = time.monotonic() + max(0.0, timeout)
        for _ in threads:
            try:
                process.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()) or 0.001)
            except queue.Full:
                break
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        dropped = 0
        while True:
            try:
                job = process.queue.get_nowait()
            except queue.Empty:
                break
            process.queue.task_done()
            if job is not _STOP:
                dropped += 1
        for thread in threads:  # a worker still busy stops after its current job
            if thread.is_alive():
                try:
                    process.queue.put_nowait(_STOP)
                except queue.Full:  # pragma: no cover - the queue was just emptied
                    break
        if dropped:
            process.count("dropped_at_close", dropped)
            logger.warning("graywsgi mirror: %d mirror jobs dropped at close", dropped)
        return dropped == 0 and not any(thread.is_alive() for thread in threads)
