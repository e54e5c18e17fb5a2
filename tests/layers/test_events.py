"""The event hooks of graywsgi/layers/events.py when no Metrics layer collects the events."""

from __future__ import annotations

import typing as t

from graywsgi.layers.events import EVENTS_KEY, note


def test_note_without_metrics_does_nothing() -> None:
    environ: dict[str, t.Any] = {}
    note(environ, "validation.failed", operation="x")
    assert EVENTS_KEY not in environ
