"""
Proxy response
==============

The answer an :class:`~graywsgi.httputil.proxy.UpstreamProxy` streams back
to the client, and what becomes of the upstream connection afterwards. The
headers that pass are chosen in :mod:`graywsgi.httputil.proxy_headers`; the
request went out as :mod:`graywsgi.httputil.proxy_request` built it.

What comes back
---------------

The status line and headers, minus the hop-by-hop ones and ``Date`` and
``Server`` (the WSGI server in front sets its own; gunicorn and nginx drop
them the same way), then the body, streamed as it arrives. The response
iterable's ``close()`` -- which every PEP 3333 server calls -- puts the
connection back in the pool only when the upstream response was read to its
end and allows keep-alive; a response the client abandoned half-way closes
the connection.
"""

from __future__ import annotations

import http.client
import logging
import typing as t
from http import HTTPStatus

from graywsgi.httputil.proxy_request import CHUNK_SIZE, _describe

__all__: list[str] = []

logger = logging.getLogger("graywsgi.proxy")

# Failures that mean "the upstream did not give a usable response".
_UPSTREAM_ERRORS = (OSError, http.client.HTTPException)


class _Upstream(t.Protocol):
    """What a response stream uses of its :class:`~graywsgi.httputil.proxy.UpstreamProxy`."""

    _log_name: str

    def _release(self, conn: http.client.HTTPConnection, pid: int) -> None: ...


class _ResponseStream:
    """The WSGI response iterable: the upstream body, then pool or close."""

    __slots__ = ("_proxy", "_conn", "_response", "_pid", "_head", "_closed")

    def __init__(
        self,
        proxy: _Upstream,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        pid: int,
        *,
        head: bool,
    ) -> None:
        self._proxy = proxy
        self._conn = conn
        self._response = response
        self._pid = pid
        self._head = head
        self._closed = False

    def __iter__(self) -> _ResponseStream:
        return self

    def __next__(self) -> bytes:
        response = self._response
        try:
            chunk = response.read1(CHUNK_SIZE)
            if not chunk and response.length and not self._head:
                # read1() reports a body cut short of its Content-Length as
                # a plain end; it is not one.
                raise http.client.IncompleteRead(b"", response.length)
        except _UPSTREAM_ERRORS as exc:
            logger.warning(
                "graywsgi proxy: upstream %s failed while sending the body: %s",
                self._proxy._log_name,
                _describe(exc),
            )
            self.close()
            raise
        if not chunk:
            raise StopIteration
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        response, conn = self._response, self._conn
        if not response.isclosed() and (self._head or response.length == 0):
            try:
                response.read()  # nothing to read: marks the response complete
            except _UPSTREAM_ERRORS:
                pass
        if response.isclosed() and not response.will_close and conn.sock is not None:
            self._proxy._release(conn, self._pid)
        else:
            response.close()
            conn.close()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"

