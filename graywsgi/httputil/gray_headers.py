"""
Gray headers
============

The HTTP headers that choose a request's route, and so the ones the trust
boundary guards: :class:`~graywsgi.httputil.trust.TrustPolicy` strips them
from untrusted requests, and a gateway signature
(:mod:`graywsgi.httputil.signing`) covers exactly these, in this order.

=====================  ===========================  =====================
Header                 WSGI key                     Canonical line name
=====================  ===========================  =====================
``X-Gray-ID``          ``HTTP_X_GRAY_ID``           ``x-gray-id``
``X-Traffic-Color``    ``HTTP_X_TRAFFIC_COLOR``     ``x-traffic-color``
``X-Canary-Weight``    ``HTTP_X_CANARY_WEIGHT``     ``x-canary-weight``
``X-Version``          ``HTTP_X_VERSION``           ``x-version``
``X-Env``              ``HTTP_X_ENV``               ``x-env``
``X-Canary-ID``        ``HTTP_X_CANARY_ID``         ``x-canary-id``
=====================  ===========================  =====================

``X-Canary-Weight`` (a 0-1 share of traffic) follows the same rule as the
others: a client that could set it would widen the canary for itself.
"""

from __future__ import annotations

__all__ = ["GRAY_HEADERS", "GRAY_HEADER_NAMES"]

#: WSGI environ keys of the gray headers, in canonical-string order.
GRAY_HEADERS: tuple[str, ...] = (
    "HTTP_X_GRAY_ID",
    "HTTP_X_TRAFFIC_COLOR",
    "HTTP_X_CANARY_WEIGHT",
    "HTTP_X_VERSION",
    "HTTP_X_ENV",
    "HTTP_X_CANARY_ID",
)

#: Lower-case HTTP names of the gray headers, in the same order.
GRAY_HEADER_NAMES: tuple[str, ...] = tuple(
    key[len("HTTP_") :].lower().replace("_", "-") for key in GRAY_HEADERS
)
