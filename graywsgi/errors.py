"""
Errors
======

One exception family for the whole library, and one response shape for a
request graywsgi refuses.

- :class:`GrayError` is the base class of everything graywsgi raises.
- :class:`ConfigurationError` is raised when a middleware is built with
  options that cannot work. It is raised at construction, never at request
  time, and never by ``assert`` (asserts vanish under ``python -O``).
- :class:`RequestError` carries the HTTP status it means
  (``status_hint``), like h11's ``error_status_hint``.

A refused request is answered with RFC 9457 ``application/problem+json``
built by :func:`problem_response`, the same body under Flask, Django and
raw WSGI::

    {"type": "about:blank", "title": "Service Unavailable", "status": 503,
     "detail": "..."}
"""

from __future__ import annotations

import json
import typing as t
from http import HTTPStatus

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse

__all__ = [
    "GrayError",
    "ConfigurationError",
    "RequestError",
    "problem_response",
    "PROBLEM_CONTENT_TYPE",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"


class GrayError(Exception):
    """Base class of every exception graywsgi raises."""


class ConfigurationError(GrayError, ValueError):
    """Options that cannot work; raised when a middleware is constructed."""


class RequestError(GrayError):
    """A request graywsgi cannot accept.

    :param detail: a human-readable explanation, safe to show the client.
    :param status_hint: the HTTP status this error means (default 400).
    """

    def __init__(self, detail: str, status_hint: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_hint = status_hint


def problem_response(
    start_response: StartResponse,
    status: int,
    detail: str,
    *,
    headers: t.Sequence[tuple[str, str]] = (),
    extra: t.Mapping[str, object] | None = None,
) -> list[bytes]:
    """Start an RFC 9457 problem+json response and return its body.

    :param start_response: the WSGI ``start_response`` callable.
    :param status: the HTTP status code.
    :param detail: the ``detail`` member.
    :param headers: extra response headers (e.g. ``Retry-After``).
    :param extra: extension members added to the JSON object.
    :return: the body, to be returned from the WSGI callable.
    """
    phrase = HTTPStatus(status).phrase
    document: dict[str, object] = {
        "type": "about:blank",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        document.update(extra)
    body = json.dumps(document, ensure_ascii=True).encode("ascii")
    start_response(
        f"{status} {phrase}",
        [
            ("Content-Type", PROBLEM_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]
