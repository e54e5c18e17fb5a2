"""
Prometheus
==========

The request metrics of :mod:`graywsgi.metrics.layer` for Prometheus, with
``prometheus_client``: a request duration histogram by route, A/B group,
status class and method, and counters for routing decisions, breaker trips,
rollbacks and resumes. Needs the ``prometheus`` extra
(``pip install graywsgi[prometheus]``)::

    from graywsgi import Extraction, Router
    from graywsgi.contrib.prometheus import PrometheusListener, PrometheusMetrics
    from graywsgi.layers.guard import Guard

    guard = Guard(listeners=[PrometheusListener()])
    app.wsgi_app = PrometheusMetrics(Extraction(Router(app.wsgi_app, "rules.yaml", guard=guard)))

:class:`PrometheusMetrics` is a plain WSGI middleware; put it outermost. It
times the request from the moment it enters until the server *closes* the
response iterable, then reads what the layers inside decided from the
environ (``environ["graywsgi.context"]``, ``environ["graywsgi.decision"]``).
A ``GET`` (or ``HEAD``) of ``path`` (default ``/metrics``; ``None`` to leave
exposure to your own exporter) is answered with the text exposition format.

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the server starts and call :func:`child_exit` from
the gunicorn config's ``child_exit`` hook: each scrape then reports the sum
over all workers, whichever worker answers it.

Label values are sanitised (``A-Z a-z 0-9 _ . - /``, others become ``_``)
and cut to ``max_value_length`` characters; each label keeps at most
``max_values`` distinct values per process, later newcomers are ``other``.
A missing value is ``none``.

Recording never fails a request: an exception while recording is logged on
the ``graywsgi.contrib.prometheus`` logger (at most once per
``error_interval`` seconds) and the response goes on.

No thread and no socket is started, at import or later. In multiprocess
mode ``prometheus_client`` keeps each process's values in files named by
its pid, and starts new files in a worker forked from a master that built
the app (``--preload``), so counts are never shared by two processes.
"""

from __future__ import annotations

import logging
import os
import time
import typing as t

try:
    import prometheus_client
    from prometheus_client import multiprocess
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "graywsgi.contrib.prometheus needs prometheus_client: pip install graywsgi[prometheus]"
    ) from exc

from graywsgi.core.breaker import BreakerListener
from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.contrib._recording import BoundedValues, RateLimitedErrors
from graywsgi.metrics.step import DECISION_KEY, method_tag, status_class

if t.TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from graywsgi.core.window import WindowTotals

__all__ = ["PrometheusMetrics", "PrometheusListener", "child_exit", "DEFAULT_BUCKETS"]

logger = logging.getLogger("graywsgi.contrib.prometheus")

#: The histogram's default bucket bounds, in seconds (``prometheus_client``'s).
DEFAULT_BUCKETS: tuple[float, ...] = tuple(prometheus_client.Histogram.DEFAULT_BUCKETS)



class PrometheusMetrics:
    """Time and count every request for Prometheus; see the module docs.

    :param app: the WSGI application to wrap (usually ``Extraction(...)``).
    :param registry: where the metrics are registered; ``prometheus_client``'s
        default ``REGISTRY`` when ``None``. One ``PrometheusMetrics`` per
        registry (the names would clash).
    :param prefix: the start of every metric name.
    :param path: the path answered with the exposition; ``None``: none.
    :param buckets: the duration histogram's bucket bounds, in seconds.
    :param max_values: distinct values kept per label per process.
    :param max_value_length: label values are cut to this length.
    :param error_interval: seconds between two logged recording failures.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        registry: prometheus_client.CollectorRegistry | None = None,
        prefix: str = "graywsgi",
        path: str | None = "/metrics",
        buckets: t.Sequence[float] = DEFAULT_BUCKETS,
        max_values: int = 100,
        max_value_length: int = 64,
        error_interval: float = 60.0,
    ) -> None:
        self.app = app
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self.path = path
        self.duration = prometheus_client.Histogram(
            f"{prefix}_request_duration_seconds",
            "Time from the request's arrival until the server closed its response, by route",
            ("route", "group", "status_class", "method"),
            registry=self.registry,
            buckets=tuple(buckets),
        )
        self.decisions = prometheus_client.Counter(
            f"{prefix}_decisions",
            "Requests a split or the Router sent to a route",
            ("route", "group", "reason", "rule"),
            registry=self.registry,
        )
        self._labels = {
            name: BoundedValues(max_values, max_value_length) for name in ("route", "group", "reason", "rule")
        }
        self._errors = RateLimitedErrors(logger, "prometheus", error_interval)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if (
            self.path is not None
            and environ.get("PATH_INFO") == self.path
            and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        ):
            return self.expose(environ, start_response)
        started = time.perf_counter()
        statuses: list[int] = []

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Callable[[bytes], object]:
            try:
                statuses.append(int(status[:3]))
            except ValueError:
                pass
            return start_response(status, headers, exc_info)

        try:
            iterable = self.app(environ, recording_start_response)
        except BaseException:
            self.record(environ, started, None, raised=True)
            raise
        return _Body(iterable, self, environ, started, statuses)

    def record(self, environ: WSGIEnvironment, started: float, status: int | None, raised: bool) -> None:
        """Record one finished request. Never raises."""
        try:
            elapsed = time.perf_counter() - started
            context = environ.get(ENVIRON_KEY)
            if not isinstance(context, GrayContext):
                context = None
            decision = environ.get(DECISION_KEY)
            route = context.route if context is not None else getattr(decision, "route", None)
            group = context.group if context is not None else getattr(decision, "group", None)
            labels = self._labels
            self.duration.labels(
                labels["route"].get(route), labels["group"].get(group),
                status_class(status, raised), method_tag(environ),
            ).observe(elapsed)
            if route is not None:
                reason = context.route_reason if context is not None else None
                if reason is None:
                    reason = getattr(decision, "reason", None) or "split"
                self.decisions.labels(
                    labels["route"].get(route), labels["group"].get(group),
                    labels["reason"].get(reason), labels["rule"].get(getattr(decision, "rule", None)),
                ).inc()
        except Exception:
            self._errors.failed("recording a request")

    def expose(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        """Answer a scrape: this process's registry, or every worker's in multiprocess mode."""
        try:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                registry = prometheus_client.CollectorRegistry()  # fresh per scrape, as the client docs say
                multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            else:
                registry = self.registry
            body = prometheus_client.generate_latest(registry)
        except Exception:
            logger.exception("graywsgi prometheus: the scrape failed")
            body = b"metrics unavailable\n"
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        start_response("200 OK", [
            ("Content-Type", prometheus_client.CONTENT_TYPE_LATEST),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class _Body:
    """The app's response iterable; records the request when the server closes it."""

    __slots__ = ("_iterable", "_iterator", "_metrics", "_environ", "_started", "_statuses", "_raised", "_done")

    def __init__(self, iterable: t.Iterable[bytes], metrics: PrometheusMetrics, environ: WSGIEnvironment,
                 started: float, statuses: list[int]) -> None:
        self._iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None
        self._metrics = metrics
        self._environ = environ
        self._started = started
        self._statuses = statuses
        self._raised = False
        self._done = False

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            return next(self._iterator)
        except StopIteration:
            raise
        except BaseException:
            self._raised = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        except BaseException:
            self._raised = True
            raise
        finally:
            if not self._done:
                self._done = True
                status = self._statuses[-1] if self._statuses else None
                self._metrics.record(self._environ, self._started, status, self._raised)

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class PrometheusListener(BreakerListener):
    """Breaker trips, rollbacks and resumes as Prometheus counters. Pass it
    to the :class:`~graywsgi.layers.guard.Guard` (``Guard(listeners=[...])``).

    - ``<prefix>_breaker_trips_total``, label ``route``: once per trip, in
      the worker that tripped;
    - ``<prefix>_rollbacks_total`` / ``<prefix>_resumes_total``: the kill
      switch was set / cleared (once per worker that sees it).

    :param registry: where the counters are registered (the default
        ``REGISTRY`` when ``None``); usually the one of
        :class:`PrometheusMetrics`.
    """

    def __init__(self, *, registry: prometheus_client.CollectorRegistry | None = None, prefix: str = "graywsgi",
                 max_values: int = 100, max_value_length: int = 64, error_interval: float = 60.0) -> None:
        registry = prometheus_client.REGISTRY if registry is None else registry
        self.trips = prometheus_client.Counter(
            f"{prefix}_breaker_trips", "Breaker trips (closed or half-open to open), by route", ("route",),
            registry=registry,
        )
        self.rollbacks = prometheus_client.Counter(
            f"{prefix}_rollbacks", "Kill switch set (rollback), once per worker that saw it", registry=registry,
        )
        self.resumes = prometheus_client.Counter(
            f"{prefix}_resumes", "Kill switch cleared (resume), once per worker that saw it", registry=registry,
        )
        self._route = BoundedValues(max_values, max_value_length)
        self._errors = RateLimitedErrors(logger, "prometheus", error_interval)

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        try:
            self.trips.labels(self._route.get(route)).inc()
        except Exception:
            self._errors.failed("recording a breaker trip")

    def on_rollback(self, reason: str = "") -> None:
        try:
            self.rollbacks.inc()
        except Exception:
            self._errors.failed("recording a rollback")

    def on_resume(self, reason: str = "") -> None:
        try:
            self.resumes.inc()
        except Exception:
            self._errors.failed("recording a resume")


def child_exit(server: t.Any, worker: t.Any) -> None:
    """gunicorn's ``child_exit`` hook for multiprocess mode: in ``gunicorn.conf.py``,
    ``from graywsgi.contrib.prometheus import child_exit``."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
