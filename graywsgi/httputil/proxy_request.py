"""
Proxy request
=============

The request an :class:`~graywsgi.httputil.proxy.UpstreamProxy` sends to its
upstream, built from the WSGI environ: the request line, the headers (which
ones pass is decided in :mod:`graywsgi.httputil.proxy_headers`) and the
body, streamed from the client. Its siblings:
:mod:`graywsgi.httputil.proxy_response` (what comes back) and
:mod:`graywsgi.httputil.proxy_url` (the base URL, whose path is the
``prefix`` below).

What goes upstream
------------------

- **Request line.** The method; the path ``prefix + SCRIPT_NAME +
  PATH_INFO``, where ``prefix`` is the path of the base URL. When the server
  supplies the raw request target (``RAW_URI`` from gunicorn and werkzeug,
  ``REQUEST_URI`` from uWSGI and mod_wsgi) and it still decodes to
  ``SCRIPT_NAME + PATH_INFO`` (nothing rewrote the path; bytes that are not
  UTF-8 may have become U+FFFD in ``PATH_INFO``), its exact bytes are sent,
  so ``%2F`` stays ``%2F`` and ``%FF`` stays ``%FF``; otherwise the decoded
  path is percent-encoded again (a literal ``%`` as ``%25``). Then
  ``?QUERY_STRING`` when it is not empty. Bytes that cannot appear in a
  request line (controls, space, non-ASCII) are percent-encoded.
- **Headers.** Every ``HTTP_*`` header (its name back in ``Title-Case``)
  plus ``Content-Type`` and ``Content-Length``, except the hop-by-hop
  headers (:data:`~graywsgi.httputil.proxy_headers.HOP_BY_HOP`, and every header the ``Connection`` header
  names) and ``Expect`` (the server in front already answered it).
  ``Host`` becomes the upstream's host unless ``preserve_host=True``.
  ``X-Forwarded-For`` gets ``REMOTE_ADDR`` appended, ``X-Forwarded-Proto``
  is set to ``wsgi.url_scheme`` and ``X-Forwarded-Host`` to the Host the
  client sent. A header value with a control character is refused (400),
  never forwarded.
- **Body.** Streamed in 64 KiB pieces, never held whole in memory. A
  request that came in chunked (a ``Transfer-Encoding`` header and
  ``wsgi.input_terminated``, as gunicorn and werkzeug set them) goes out
  chunked; otherwise, with ``CONTENT_LENGTH``, exactly that many bytes are
  sent; anything else has no body. (gunicorn sets ``wsgi.input_terminated``
  on every request, so the ``Transfer-Encoding`` header is what tells a
  chunked body from none.) A body that ends before its ``Content-Length``
  is answered 400 and the upstream connection dropped.
"""

from __future__ import annotations

import typing as t
from urllib.parse import quote, unquote_to_bytes

from graywsgi.errors import RequestError
from graywsgi.httputil.proxy_headers import _REQUEST_SKIP, _checked_value, _connection_tokens, _server_host

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["CHUNK_SIZE"]

#: Size of the pieces a body is read and forwarded in.
CHUNK_SIZE = 64 * 1024

# A decoded path is re-encoded with these kept; "%" is not among them:
# in PATH_INFO it is a literal percent sign and must go out as "%25".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Raw request-target bytes are kept except those a request line cannot hold.
_RAW_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


class _ClientBodyError(Exception):
    """The client's request body could not be read to its announced end."""


class _RequestBody:
    """The client's body as an iterator of pieces, for one or two attempts."""

    __slots__ = ("stream", "length", "chunked", "started")

    def __init__(self, stream: t.Any, length: int | None, chunked: bool) -> None:
        self.stream = stream
        self.length = length
        self.chunked = chunked
        self.started = False

    @property
    def present(self) -> bool:
        return self.chunked or bool(self.length)

    def _read(self, size: int) -> bytes:
        self.started = True
        try:
            chunk: bytes = self.stream.read(size)
        except Exception as exc:
            raise _ClientBodyError(_describe(exc)) from exc
        return chunk

    def pieces(self) -> t.Iterator[bytes]:
        if self.chunked:
            while chunk := self._read(CHUNK_SIZE):
                yield chunk
            return
        remaining = self.length or 0
        while remaining > 0:
            chunk = self._read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise _ClientBodyError(f"the body ended {remaining} bytes short of its Content-Length")
            remaining -= len(chunk)
            yield chunk


class _Outgoing(t.NamedTuple):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: _RequestBody


def _wsgi_bytes(text: str) -> bytes:
    """The bytes a WSGI (latin-1) string stands for.

    A character above U+00FF cannot have come from a server; one an
    application put there is taken as UTF-8.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _quote_raw(text: str) -> str:
    """A raw (latin-1) request-target piece, made safe for a request line."""
    if text.isascii() and text.isprintable() and " " not in text and "#" not in text:
        return text
    return quote(_wsgi_bytes(text), safe=_RAW_SAFE)


def _same_path(raw: bytes, wsgi: bytes) -> bool:
    """Whether the decoded raw target and the WSGI path are the same path.

    Some servers (werkzeug's among them) put U+FFFD in ``PATH_INFO`` for
    bytes that are not UTF-8, so the paths are also compared that way.
    """
    return raw == wsgi or raw.decode("utf-8", "replace") == wsgi.decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _outgoing_request(
    environ: WSGIEnvironment, *, prefix: str, host_header: str, preserve_host: bool
) -> _Outgoing:
    """The request to send upstream for ``environ`` (see "What goes upstream").

    :raises RequestError: for a header value or ``Content-Length`` that
        cannot be forwarded.
    """
    method = environ.get("REQUEST_METHOD", "GET")
    hop = _connection_tokens(environ.get("HTTP_CONNECTION"))
    original_host = environ.get("HTTP_HOST") or _server_host(environ)
    headers: list[tuple[str, str]] = [
        ("Host", original_host if preserve_host and original_host else host_header)
    ]
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        lower = key[5:].replace("_", "-").lower()
        if lower in _REQUEST_SKIP or lower in hop:
            continue
        headers.append((lower.title(), _checked_value(lower, value)))
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append(("Content-Type", _checked_value("content-type", content_type)))

    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "").strip(" \t")
    remote = environ.get("REMOTE_ADDR")
    if remote:
        forwarded_for = f"{forwarded_for}, {remote}" if forwarded_for else remote
    if forwarded_for:
        headers.append(("X-Forwarded-For", _checked_value("x-forwarded-for", forwarded_for)))
    headers.append(("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")))
    if original_host:
        headers.append(("X-Forwarded-Host", _checked_value("host", original_host)))

    raw_length = environ.get("CONTENT_LENGTH", "").strip(" \t")
    length: int | None = None
    chunked = False
    if environ.get("wsgi.input_terminated") and environ.get("HTTP_TRANSFER_ENCODING"):
        chunked = True  # Transfer-Encoding overrides Content-Length (RFC 9112 §6.3)
        headers.append(("Transfer-Encoding", "chunked"))
    elif raw_length:
        if not (raw_length.isascii() and raw_length.isdigit()):
            raise RequestError("The Content-Length header is not a number.")
        length = int(raw_length)
        headers.append(("Content-Length", str(length)))
    body = _RequestBody(environ.get("wsgi.input"), length, chunked)
    return _Outgoing(method, _request_target(environ, prefix), headers, body)


def _request_target(environ: WSGIEnvironment, prefix: str) -> str:
    """The request target: ``prefix``, the path and the query string."""
    wsgi_path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path: str | None = None
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        raw_path = raw.partition("?")[0]
        if _same_path(unquote_to_bytes(_wsgi_bytes(raw_path)), _wsgi_bytes(wsgi_path)):
            path = _quote_raw(raw_path)
    if path is None:
        path = quote(_wsgi_bytes(wsgi_path), safe=_PATH_SAFE)
    target = prefix + path or "/"
    query = environ.get("QUERY_STRING")
    if query:
        target = f"{target}?{_quote_raw(query)}"
    return target
