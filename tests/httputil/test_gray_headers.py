"""graywsgi.httputil.gray_headers: the gray headers, in canonical order."""

from __future__ import annotations

from graywsgi.httputil.gray_headers import GRAY_HEADER_NAMES, GRAY_HEADERS


def test_gray_headers_are_exported_in_canonical_order() -> None:
    assert GRAY_HEADERS == (
        "HTTP_X_GRAY_ID",
        "HTTP_X_TRAFFIC_COLOR",
        "HTTP_X_CANARY_WEIGHT",
        "HTTP_X_VERSION",
        "HTTP_X_ENV",
        "HTTP_X_CANARY_ID",
    )
    assert GRAY_HEADER_NAMES == (
        "x-gray-id",
        "x-traffic-color",
        "x-canary-weight",
        "x-version",
        "x-env",
        "x-canary-id",
    )
