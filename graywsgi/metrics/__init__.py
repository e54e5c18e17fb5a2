"""Metrics: the :class:`~graywsgi.metrics.layer.Metrics` layer, its step in the
request path (:mod:`~graywsgi.metrics.step`) and the statsd lines it sends.

The names of :mod:`graywsgi.metrics.layer` are importable from here, as they
were when ``graywsgi.metrics`` was one module.
"""

from __future__ import annotations

from graywsgi.metrics.layer import (
    Metrics,
    MetricsListener,
    StatsdSink,
    TagStyle,
    PlainStyle,
    DogStatsdStyle,
    InfluxStyle,
    TAG_STYLES,
    EVENTS_KEY,
    note,
    note_internal_error,
    sanitize_name,
)

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
