"""Shared helpers of the layers tests: one request through Extraction, a fake clock."""

from __future__ import annotations

import typing as t

from werkzeug.test import create_environ

from graywsgi.core.context import GrayContext
from graywsgi.layers.extraction import Extraction

from tests.conftest import RecordingApp


def run(app: RecordingApp, *, wrapper: Extraction | None = None, **environ_overrides: t.Any) -> GrayContext:
    """Send one request with raw environ keys and return the context seen."""
    middleware = wrapper or Extraction(app)
    environ = create_environ("/")
    environ["QUERY_STRING"] = ""
    environ.update(environ_overrides)
    response_iter = middleware(environ, lambda status, headers, exc_info=None: lambda b: None)
    try:
        b"".join(response_iter)
    finally:
        getattr(response_iter, "close", lambda: None)()
    return app.last


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
