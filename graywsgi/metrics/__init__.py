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

from graywsgi.metrics.layer import *  # noqa: F403
from graywsgi.metrics.layer import __all__ as __all__
