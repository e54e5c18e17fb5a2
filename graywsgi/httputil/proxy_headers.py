"""
Proxy headers
=============

Which headers the :class:`~graywsgi.httputil.proxy.UpstreamProxy` passes on,
in both directions. The hop-by-hop headers (:data:`HOP_BY_HOP`, and every
header the ``Connection`` header names) describe one connection, not the
message, so they are dropped from the request and from the response alike.
Of the request, the headers the proxy rebuilds itself (``Host``,
``X-Forwarded-*``, the body framing) and ``Expect`` are dropped too, and a
value with a control character is refused (400); of the response, ``Date``
and ``Server``, which the WSGI server in front sets itself. See "What goes
upstream" in :mod:`graywsgi.httputil.proxy_request` and "What comes back" in
:mod:`graywsgi.httputil.proxy_response`; the base URL is checked in
:mod:`graywsgi.httputil.proxy_url`.
"""

from __future__ import annotations

import http.client
import re
import typing as t

from graywsgi.errors import RequestError
from graywsgi.httputil.headers import valid_field_value
from graywsgi.httputil.proxy_url import _DEFAULT_PORTS

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["HOP_BY_HOP"]

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1),
#: lower-case. Headers named in ``Connection`` are dropped too.
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Request headers the proxy rebuilds itself or must not pass on.
_REQUEST_SKIP = HOP_BY_HOP | {
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "expect",
    "content-length",
    "content-type",
}
# Response headers the WSGI server in front sets itself.
_RESPONSE_SKIP = HOP_BY_HOP | {"date", "server"}
_LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")


def _connection_tokens(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(token.strip(" \t").lower() for token in value.split(","))


def _response_headers(response: http.client.HTTPResponse) -> list[tuple[str, str]]:
    hop = _connection_tokens(", ".join(response.headers.get_all("Connection") or ()))
    headers = []
    for name, value in response.getheaders():
        lower = name.lower()
        if lower in _RESPONSE_SKIP or lower in hop:
            continue
        if "\r" in value or "\n" in value:
            value = _LINE_BREAKS.sub(" ", value)  # unfold obs-fold
        headers.append((name, value))
    return headers


def _checked_value(lower_name: str, value: str) -> str:
    if not (value.isascii() and value.isprintable()) and not valid_field_value(value.strip(" \t")):
        raise RequestError(f"The {lower_name.title()} header has a value that cannot be forwarded.")
    return value


def _server_host(environ: WSGIEnvironment) -> str:
    server = environ.get("SERVER_NAME", "")
    port = environ.get("SERVER_PORT", "")
    if not server:
        return ""
    default = _DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", "http"))
    return f"{server}:{port}" if port and port != str(default) else str(server)
