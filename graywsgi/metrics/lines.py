"""
Metrics' statsd lines
=====================

:class:`MetricLines` writes the statsd lines of
:class:`~graywsgi.metrics.layer.Metrics` (what they hold is listed there):
the timer of a request, the decision counter, the degraded-extraction and
event counters, and the report of dropped lines. It is a base of
``Metrics``, which sets the attributes it reads; it is not used on its own.

Tag values go through a bounded dimension per tag key and are written in the
layer's tag style (:mod:`graywsgi.metrics.tags`). The timer line of each
combination of route, group, version, status class and method, and the
decision line of each route, group, reason and rule, are made once and
cached (up to ``_CACHE_LIMIT`` of each), found again by the raw values: most
requests repeat a few combinations. :mod:`graywsgi.metrics.step` builds the
usual request's datagram from them, and :mod:`graywsgi.metrics.statsd`
sends the lines.
"""

from __future__ import annotations

import threading
import typing as t

from graywsgi.core.context import ENVIRON_KEY, DegradeLevel, GrayContext
from graywsgi.metrics.step import DECISION_KEY, method_tag, status_class
from graywsgi.metrics.tags import TagStyle, _Dimension, sanitize_name

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi.metrics.statsd import StatsdSink

__all__ = ["MetricLines"]


_REQUEST_TAGS = ("route", "group", "version", "status", "method")
_DECISION_TAGS = ("route", "group", "reason", "rule")


class MetricLines:
    """The statsd lines of :class:`~graywsgi.metrics.layer.Metrics` (its base).

    Holds no state of its own: ``Metrics.__init__`` sets the attributes
    below, and :meth:`~graywsgi.metrics.layer.Metrics.send_lines` and
    :meth:`~graywsgi.metrics.layer.Metrics.datagram_template` use the methods.
    """

    style: TagStyle
    sink: StatsdSink
    prefix: str
    constant_tags: tuple[tuple[str, str], ...]
    max_values: int
    max_value_length: int
    _dimensions: dict[str, _Dimension]
    _dimension_lock: threading.Lock
    _fragments: dict[tuple[str, ...], str]
    _request_templates: dict[tuple[str, ...], tuple[str, str] | str]
    _decision_lines: dict[tuple[str, ...], str]
    _raw_templates: dict[tuple[str | None, ...], tuple[str, str] | str]
    _raw_decision_lines: dict[tuple[str | None, ...], str]
    _request_name: str
    _decision_name: str
    _degraded_name: str
    _route: _Dimension
    _group: _Dimension
    _version: _Dimension
    _reason: _Dimension
    _rule: _Dimension
    _levels: dict[DegradeLevel, str]

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
