"""
OpenTelemetry
=============

The gray context in OpenTelemetry, through the ``opentelemetry-api``
package only (the SDK, exporters and instrumentation are your
application's choice). Needs the ``otel`` extra
(``pip install graywsgi[otel]``)::

    from graywsgi import Extraction, Router
    from graywsgi.contrib.otel import GrayBaggage, OpenTelemetryListener, OpenTelemetryMiddleware
    from graywsgi.layers.guard import Guard

    guard = Guard(listeners=[OpenTelemetryListener()])
    app.wsgi_app = OpenTelemetryMiddleware(
        Extraction(Router(GrayBaggage(app.wsgi_app), "rules.yaml", guard=guard)))

Three pieces:

- :class:`OpenTelemetryMiddleware`, a plain WSGI middleware; put it
  outside the graywsgi layers (inside ``opentelemetry-instrumentation-wsgi``
  if you use it). When the server *closes* the response it reads what the
  layers inside decided (``environ["graywsgi.context"]``,
  ``environ["graywsgi.decision"]``) and sets ``graywsgi.route``,
  ``graywsgi.group``, ``graywsgi.version``, ``graywsgi.degrade_level``,
  ``graywsgi.source``, ``graywsgi.rule`` and ``graywsgi.reason`` on the span
  that was current when the request entered (the instrumentation's server
  span). With ``start_span=True`` and no recording span current, it starts
  a ``SERVER`` span itself (HTTP semantic conventions; the parent is taken
  from the request's headers with the global propagator). It records the
  request duration histogram and the decision counter with the OTel
  metrics API.
- :class:`GrayBaggage`, a WSGI middleware for *inside* the Router (around
  your application): it puts the gray context into the OTel baggage of
  the current context while the application runs and while its body is
  iterated, so ``opentelemetry.propagate.inject`` (and every instrumented
  HTTP client) carries it downstream. The gray id is **not** among the
  default keys: baggage leaves your service.
- :class:`OpenTelemetryListener`, for the :class:`~graywsgi.layers.guard.Guard`:
  breaker trips, rollbacks and resumes as counters.

:func:`gray_baggage` is the mapping :class:`GrayBaggage` puts in;
:func:`baggage_context` reads such entries back out of an OTel context
(what an upstream service sent). The three live in
:mod:`graywsgi.contrib.otel_baggage` and are importable from here.

Metric attribute values are sanitised (``A-Z a-z 0-9 _ . - /``, others
become ``_``) and cut to ``max_value_length`` characters; each attribute
keeps at most ``max_values`` distinct values per process, later newcomers
are ``other``; a missing value is ``none``. Span attributes are only cut.

Recording never fails a request: an exception while recording (an SDK or
exporter that raises) is logged on the ``graywsgi.contrib.otel`` logger
(at most once per ``error_interval`` seconds) and the response goes on.
"""

from __future__ import annotations

import logging
import time
import typing as t

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "graywsgi.contrib.otel needs opentelemetry-api: pip install graywsgi[otel]"
    ) from exc

from graywsgi._version import __version__
from graywsgi.core.breaker import BreakerListener
from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.contrib._recording import BoundedValues, RateLimitedErrors
from graywsgi.contrib.otel_baggage import (
    DEFAULT_BAGGAGE_KEYS,
    GrayBaggage,
    _attach,
    _detach,
    baggage_context,
    gray_baggage,
)
from graywsgi.metrics.step import DECISION_KEY, method_tag, status_class

if t.TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from graywsgi.core.window import WindowTotals

__all__ = [
    "OpenTelemetryMiddleware",
    "OpenTelemetryListener",
    "GrayBaggage",
    "gray_baggage",
    "baggage_context",
    "DEFAULT_BAGGAGE_KEYS",
    "DURATION_BUCKETS",
]

logger = logging.getLogger("graywsgi.contrib.otel")

_SCOPE = "graywsgi.contrib.otel"

#: The duration histogram's advised bucket bounds, in seconds (the HTTP semantic conventions').
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class _EnvironGetter(Getter["WSGIEnvironment"]):
    """Reads propagation headers (``traceparent``, ``baggage``) from a WSGI environ."""

    def get(self, carrier: WSGIEnvironment, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [str(value)]

    def keys(self, carrier: WSGIEnvironment) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


class OpenTelemetryMiddleware:
    """Gray attributes on the request's span, and request metrics; see the module docs.

    :param app: the WSGI application to wrap (usually ``Extraction(...)``).
    :param tracer_provider: for the span started with ``start_span``; the
        global one when ``None``.
    :param meter_provider: for the metrics; the global one when ``None``.
    :param start_span: start a ``SERVER`` span when the request comes in
        without a recording span (no instrumentation outside).
    :param namespace: the start of every attribute and metric name.
    :param max_values: distinct values kept per metric attribute per process.
    :param max_value_length: attribute values are cut to this length.
    :param error_interval: seconds between two logged recording failures.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        start_span: bool = False,
        namespace: str = "graywsgi",
        max_values: int = 100,
        max_value_length: int = 64,
        error_interval: float = 60.0,
    ) -> None:
        self.app = app
        self.start_span = start_span
        self.namespace = namespace
        self.max_value_length = max_value_length
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            f"{namespace}.request.duration", unit="s",
            description="Time from the request's arrival until the server closed its response, by route",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.decisions = meter.create_counter(
            f"{namespace}.decisions", unit="{request}",
            description="Requests a split or the Router sent to a route",
        )
        self._values = {name: BoundedValues(max_values, max_value_length)
                        for name in ("route", "group", "reason", "rule", "error")}
        self._errors = RateLimitedErrors(logger, "otel", error_interval)
        self._keys = {name: f"{namespace}.{name}" for name in
                      ("route", "group", "version", "degrade_level", "source", "rule", "reason", "status_class")}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        started = time.perf_counter()
        statuses: list[int] = []
        span: trace.Span = trace.INVALID_SPAN
        own: trace.Span | None = None
        request_context: otel_context.Context | None = None
        try:
            span = trace.get_current_span()
            if self.start_span and not span.is_recording():
                own, request_context = self._start(environ)
                span = own
        except Exception:
            self._errors.failed("starting a span")

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Callable[[bytes], object]:
            try:
                statuses.append(int(status[:3]))
            except ValueError:
                pass
            return start_response(status, headers, exc_info)

        token = _attach(request_context)
        try:
            iterable = self.app(environ, recording_start_response)
        except BaseException as error:
            self.record(environ, started, None, error, span, own)
            raise
        finally:
            _detach(token)
        return _Body(iterable, self, environ, started, statuses, span, own, request_context)

    def _start(self, environ: WSGIEnvironment) -> tuple[trace.Span, otel_context.Context]:
        """A ``SERVER`` span for this request, child of the caller's (``traceparent``)."""
        parent = propagate.extract(environ, getter=_GETTER)
        raw_method = str(environ.get("REQUEST_METHOD", ""))
        method = raw_method if raw_method in _METHODS else "_OTHER"
        attributes: dict[str, str] = {
            "http.request.method": method,
            "url.path": str(environ.get("PATH_INFO", ""))[:2048] or "/",
            "url.scheme": str(environ.get("wsgi.url_scheme", "http")),
        }
        if method == "_OTHER":
            attributes["http.request.method_original"] = raw_method[: self.max_value_length]
        span = self.tracer.start_span("HTTP" if method == "_OTHER" else method, context=parent,
                                      kind=trace.SpanKind.SERVER, attributes=attributes)
        return span, trace.set_span_in_context(span, parent)

    def record(self, environ: WSGIEnvironment, started: float, status: int | None,
               error: BaseException | bool | None, span: trace.Span, own: trace.Span | None) -> None:
        """Record one finished request (``error``: what the app raised, if it did). Never raises."""
        elapsed = time.perf_counter() - started
        raised = bool(error)
        context = environ.get(ENVIRON_KEY)
        if not isinstance(context, GrayContext):
            context = None
        decision = environ.get(DECISION_KEY)
        route = context.route if context is not None else getattr(decision, "route", None)
        group = context.group if context is not None else getattr(decision, "group", None)
        rule = getattr(decision, "rule", None) if route is not None else None
        reason = context.route_reason if context is not None else None
        if reason is None and route is not None:
            reason = getattr(decision, "reason", None) or "split"
        try:
            self._annotate(span, context, route, group, rule, reason)
        except Exception:
            self._errors.failed("setting span attributes")
        if own is not None:
            try:
                if status is not None:
                    own.set_attribute("http.response.status_code", status)
                if raised or (status is not None and status >= 500):
                    error_type = type(error).__qualname__ if isinstance(error, BaseException) else (
                        str(status) if status is not None and not raised else "_OTHER")
                    own.set_attribute("error.type", error_type)
                    own.set_status(trace.StatusCode.ERROR)
                own.end()
            except Exception:
                self._errors.failed("ending the span")
        try:
            values = self._values
            keys = self._keys
            attributes: dict[str, str | int] = {
                keys["route"]: values["route"].get(route),
                keys["group"]: values["group"].get(group),
                keys["status_class"]: status_class(status, raised),
                "http.request.method": _semconv_method(environ),
            }
            if status is not None and not raised:
                attributes["http.response.status_code"] = status
            if raised:
                attributes["error.type"] = values["error"].get(
                    type(error).__qualname__ if isinstance(error, BaseException) else "_OTHER")
            elif status is not None and status >= 500:
                attributes["error.type"] = str(status)
            self.duration.record(elapsed, attributes)
            if route is not None:
                self.decisions.add(1, {
                    keys["route"]: values["route"].get(route),
                    keys["group"]: values["group"].get(group),
                    keys["reason"]: values["reason"].get(reason),
                    keys["rule"]: values["rule"].get(rule),
                })
        except Exception:
            self._errors.failed("recording metrics")

    def _annotate(self, span: trace.Span, context: GrayContext | None, route: str | None, group: str | None,
                  rule: str | None, reason: str | None) -> None:
        if not span.is_recording():
            return
        keys = self._keys
        cut = self.max_value_length
        attributes: dict[str, str | int] = {}
        for name, value in (("route", route), ("group", group), ("rule", rule), ("reason", reason)):
            if value is not None:
                attributes[keys[name]] = str(value)[:cut]
        if context is not None:
            if context.version is not None:
                attributes[keys["version"]] = context.version[:cut]
            attributes[keys["degrade_level"]] = int(context.degrade_level)
            source = context.sources.get("gray_id")
            if source is not None:
                attributes[keys["source"]] = source.value
        if attributes:
            span.set_attributes(attributes)


def _semconv_method(environ: WSGIEnvironment) -> str:
    method = method_tag(environ)
    return "_OTHER" if method == "other" else method


class _Body:
    """The app's response iterable, iterated inside ``context``; records the request when the server closes it."""

    __slots__ = ("_iterable", "_iterator", "_middleware", "_environ", "_started", "_statuses", "_span", "_own",
                 "_context", "_error", "_done")

    def __init__(self, iterable: t.Iterable[bytes], middleware: OpenTelemetryMiddleware, environ: WSGIEnvironment,
                 started: float, statuses: list[int], span: trace.Span, own: trace.Span | None,
                 context: otel_context.Context | None) -> None:
        self._iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None
        self._middleware = middleware
        self._environ = environ
        self._started = started
        self._statuses = statuses
        self._span = span
        self._own = own
        self._context = context
        self._error: BaseException | None = None
        self._done = False

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        token = _attach(self._context)
        try:
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            return next(self._iterator)
        except StopIteration:
            raise
        except BaseException as error:
            self._error = error
            raise
        finally:
            _detach(token)

    def close(self) -> None:
        token = _attach(self._context)
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        except BaseException as error:
            self._error = error
            raise
        finally:
            _detach(token)
            if not self._done:
                self._done = True
                status = self._statuses[-1] if self._statuses else None
                self._middleware.record(self._environ, self._started, status, self._error, self._span, self._own)

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class OpenTelemetryListener(BreakerListener):
    """Breaker trips, rollbacks and resumes as OTel counters. Pass it to the
    :class:`~graywsgi.layers.guard.Guard` (``Guard(listeners=[...])``).

    - ``<namespace>.breaker.trips``, attribute ``<namespace>.route``: once
      per trip, in the worker that tripped;
    - ``<namespace>.rollbacks`` / ``<namespace>.resumes``: the kill switch
      was set / cleared (once per worker that sees it).

    :param meter_provider: the global one when ``None``.
    """

    def __init__(self, *, meter_provider: otel_metrics.MeterProvider | None = None, namespace: str = "graywsgi",
                 max_values: int = 100, max_value_length: int = 64, error_interval: float = 60.0) -> None:
        meter = otel_metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self.trips = meter.create_counter(f"{namespace}.breaker.trips", unit="{trip}",
                                          description="Breaker trips (closed or half-open to open), by route")
        self.rollbacks = meter.create_counter(f"{namespace}.rollbacks", unit="{rollback}",
                                              description="Kill switch set (rollback), once per worker that saw it")
        self.resumes = meter.create_counter(f"{namespace}.resumes", unit="{resume}",
                                            description="Kill switch cleared (resume), once per worker that saw it")
        self._route_key = f"{namespace}.route"
        self._route = BoundedValues(max_values, max_value_length)
        self._errors = RateLimitedErrors(logger, "otel", error_interval)

    def on_trip(self, route: str, totals: WindowTotals, reason: str) -> None:
        try:
            self.trips.add(1, {self._route_key: self._route.get(route)})
        except Exception:
            self._errors.failed("recording a breaker trip")

    def on_rollback(self, reason: str = "") -> None:
        try:
            self.rollbacks.add(1)
        except Exception:
            self._errors.failed("recording a rollback")

    def on_resume(self, reason: str = "") -> None:
        try:
            self.resumes.add(1)
        except Exception:
            self._errors.failed("recording a resume")
