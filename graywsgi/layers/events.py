"""
Events of a request
===================

Layers (and applications) report events of the current request with
:func:`note` -- counted by :class:`~graywsgi.metrics.layer.Metrics` when it
wraps the request, a no-op when nothing does. The hook lives here, below
the Metrics layer, so that any layer can report without depending on it::

    from graywsgi.layers.events import note, note_internal_error
    note_internal_error(environ, "split")
    note(environ, "validation.failed", operation="createOrder")

The events are appended to the request's list at ``environ[EVENTS_KEY]``,
which :class:`~graywsgi.metrics.step.MetricsStep` puts there and sends as
counters when the response ends (see :mod:`graywsgi.metrics.layer`; the
lines are written by :mod:`graywsgi.metrics.lines`, in the styles of
:mod:`graywsgi.metrics.tags`, and sent by :mod:`graywsgi.metrics.statsd`).
"""

from __future__ import annotations

import typing as t


if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["EVENTS_KEY", "note", "note_internal_error"]

#: Where a request's event list is, when a Metrics layer collects them.
EVENTS_KEY = "graywsgi.metrics.events"



def note(environ: WSGIEnvironment, event: str, **tags: str) -> None:
    """Count ``event`` for this request (``<prefix>.<event>``, +1, with ``tags``).

    For graywsgi's layers and for applications. Does nothing when no
    :class:`~graywsgi.metrics.layer.Metrics` wraps the request. Never raises.

    :param environ: the request's WSGI environ.
    :param event: the metric name after the prefix, e.g. ``"validation.failed"``.
    :param tags: dimensions; values are sanitised and bounded like all others.
    """
    events = environ.get(EVENTS_KEY)
    if events is not None:
        events.append((event, tags))


def note_internal_error(environ: WSGIEnvironment, layer: str) -> None:
    """Count an internal error of ``layer`` that the request survived (fail-open)."""
    note(environ, "internal_error", layer=layer)
