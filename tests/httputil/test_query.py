"""graywsgi.httputil.query: query strings as bytes."""

from __future__ import annotations

from graywsgi.httputil.query import query_param_bytes


def test_query_param_bytes_helper() -> None:
    assert query_param_bytes("x=1&y=%41", "y") == b"A"
    assert query_param_bytes("x=1", "y") is None
    assert query_param_bytes("y", "y") == b""
    assert query_param_bytes("y=\u0100", "y") is None  # not a WSGI (latin-1) string
