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

Trace ids (the trace id of ``traceparent``, else the request id) are added
as a ``trace_id`` tag to the request timer of a ``trace_sample_rate``
fraction of requests only (default 1 %), to keep cardinality bounded.

Its parts
---------

The layer's other names live in modules of their own and are importable
from here as well:

- :mod:`graywsgi.metrics.tags` -- the tag styles (``tag_style``),
  :func:`~graywsgi.metrics.tags.sanitize_name` and the bounded dimensions;
- :mod:`graywsgi.metrics.lines` -- the lines a request sends, and the
  per-route preformatted timer and decision lines;
- :mod:`graywsgi.metrics.statsd` -- :class:`~graywsgi.metrics.statsd.StatsdSink`:
  the transports, fork awareness, and failures that never hurt a request;
- :mod:`graywsgi.layers.events` -- :func:`~graywsgi.layers.events.note`
  and :func:`~graywsgi.layers.events.note_internal_error`, the hooks for
  other layers;
- :mod:`graywsgi.metrics.step` -- the layer's step in the request path.
"""

from __future__ import annotations

import random
import threading
import typing as t

from graywsgi.core.breaker import BreakerListener, BreakerState
from graywsgi.core.context import DegradeLevel
from graywsgi.errors import ConfigurationError
from graywsgi.layers.events import EVENTS_KEY, note, note_internal_error
from graywsgi.metrics.lines import MetricLines
from graywsgi.metrics.statsd import StatsdSink, _ForkGeneration
from graywsgi.metrics.step import MetricsStep
from graywsgi.metrics.tags import (
    _NAME_PART,
    _UNSAFE_TAG_KEY,
    TAG_STYLES,
    DogStatsdStyle,
    InfluxStyle,
    PlainStyle,
    TagStyle,
    _Dimension,
    sanitize_name,
)
from graywsgi.layers.pipeline import METRICS, Pipeline

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

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

_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


# -- the middleware -----------------------------------------------------------


class Metrics(Pipeline, MetricLines):
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
        :class:`~graywsgi.metrics.tags.TagStyle`.
    :param tags: constant tags added to every line (``{"service": "shop"}``).
    :param trace_sample_rate: fraction of requests whose timer carries a
        ``trace_id`` tag (0 to 1, default 0.01).
    :param max_values: distinct values kept per dimension per process.
    :param max_value_length: longest tag value, in characters.
    :param sink: where lines go; a :class:`~graywsgi.metrics.statsd.StatsdSink` built from the
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
            raise ConfigurationError(f"metrics must be a graywsgi.metrics.Metrics, got {metrics!r}")
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
