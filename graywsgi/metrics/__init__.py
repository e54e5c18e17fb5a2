"""Metrics: the :class:`~graywsgi.metrics.layer.Metrics` layer, its step in the
request path (:mod:`~graywsgi.metrics.step`) and the statsd lines it sends
(:mod:`~graywsgi.metrics.lines`, in the tag styles of
:mod:`~graywsgi.metrics.tags`, through the sink of
:mod:`~graywsgi.metrics.statsd`); other layers report events with the hooks
of :mod:`~graywsgi.layers.events`.

The names of :mod:`graywsgi.metrics.layer` are importable from here, as they
were when ``graywsgi.metrics`` was one module.
"""

from __future__ import annotations

from graywsgi.layers.events import EVENTS_KEY, note, note_internal_error
from graywsgi.metrics.layer import Metrics, MetricsListener
from graywsgi.metrics.statsd import StatsdSink
from graywsgi.metrics.tags import (
    TAG_STYLES,
    DogStatsdStyle,
    InfluxStyle,
    PlainStyle,
    TagStyle,
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
