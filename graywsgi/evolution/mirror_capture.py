"""
Mirror capture
==============

The two sides of a request :class:`~graywsgi.evolution.mirror.Mirror`
mirrors: the copy of the request the shadow gets and its answer, captured
(``_call``), and the client's own response, passed through and captured on
the way (``_Tee``), which hands the mirror job (``_Job``) to the mirror's
queue when it is closed. Both answers are
:class:`~graywsgi.evolution.mirror_diff.Captured` for the comparison
(:mod:`graywsgi.evolution.mirror_diff`).

What the client sees
--------------------

Nothing changes for the client. Its response is the application's, byte for
byte, and it never waits for the shadow: the mirror job is handed to a
bounded queue when the client's response is *closed* (so after its last
byte was written) with a non-blocking put. When the queue is full the copy
is dropped and counted (``dropped_queue_full``).

What the shadow gets
--------------------

A copy of the request's CGI and ``HTTP_*`` variables (never the server's
own ``wsgi.*`` objects), with the path the caller chose (the new API path)
and the header ``X-Graywsgi-Mirror: 1`` (:data:`MIRROR_HEADER`) so the
shadow can recognise mirror traffic and skip side effects (sending mail,
charging cards, writing). Mirror only methods whose side effects the shadow
is ready for: by default ``methods=("GET", "HEAD")``.
"""

from __future__ import annotations

import logging
import typing as t

from graywsgi.evolution.mirror_diff import Captured
from graywsgi.layers.outcome import status_code

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


__all__ = ["MIRROR_HEADER"]

logger = logging.getLogger("graywsgi.mirror")

#: The header that marks a mirror request (``X-Graywsgi-Mirror: 1``).
MIRROR_HEADER = "X-Graywsgi-Mirror"
_MIRROR_KEY = "HTTP_X_GRAYWSGI_MIRROR"


class _Submits(t.Protocol):
    """What the tee needs of its :class:`~graywsgi.evolution.mirror.Mirror`
    (which imports this module, so it is not imported here)."""

    max_response: int

    def submit(self, process: t.Any, job: _Job) -> None: ...


class _Job(t.NamedTuple):
    environ: dict[str, t.Any]
    body: bytes
    primary: Captured


def _snapshot(environ: WSGIEnvironment, path: str) -> dict[str, t.Any]:
    snapshot: dict[str, t.Any] = {
        key: value
        for key, value in environ.items()
        if isinstance(value, str) and (key.isupper() and not key.startswith("wsgi"))
    }
    for key in ("wsgi.url_scheme",):
        if key in environ:
            snapshot[key] = environ[key]
    snapshot.update(
        {
            "PATH_INFO": path,
            _MIRROR_KEY: "1",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
    )
    for key in ("HTTP_TRANSFER_ENCODING", "RAW_URI", "REQUEST_URI"):  # the path changed: no raw target
        snapshot.pop(key, None)
    return snapshot


def _call(app: WSGIApplication, environ: dict[str, t.Any], limit: int) -> Captured:
    started: list[t.Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
        started[:] = [status, tuple(headers)]
        return chunks.append

    chunks: list[bytes] = []
    iterable = app(environ, start_response)
    size = 0
    too_large = False
    try:
        for chunk in iterable:
            size += len(chunk)
            if size > limit:
                too_large = True
                break
            chunks.append(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("shadow did not start a response")
    return Captured(status_code(started[0]), started[1], None if too_large else b"".join(chunks))


class _Tee:
    """The client's response, passed through unchanged and captured (bounded).

    At close the mirror job is queued -- never before the client has its
    last byte, never blocking.
    """

    def __init__(
        self,
        mirror: _Submits,
        process: t.Any,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        job: _Job,
    ) -> None:
        self._mirror = mirror
        self._process = process
        self._job = job
        self._status: str | None = None
        self._headers: tuple[tuple[str, str], ...] = ()
        self._chunks: list[bytes] | None = []
        self._size = 0
        self._raised = False
        self._complete = False
        self._closed = False

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Callable[[bytes], object]:
            self._status, self._headers = status, tuple(headers)
            write = start_response(status, headers, exc_info)

            def tee_write(data: bytes) -> object:
                self._keep(data)
                return write(data)

            return tee_write

        self._iterable = app(environ, capture)
        self._iterator: t.Iterator[bytes] | None = None

    def _keep(self, chunk: bytes) -> None:
        if self._chunks is not None:
            self._size += len(chunk)
            if self._size > self._mirror.max_response:
                self._chunks = None
            else:
                self._chunks.append(chunk)

    def __iter__(self) -> _Tee:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._complete = True
            raise
        except BaseException:
            self._raised = True
            raise
        self._keep(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            if not self._raised and self._status is not None:
                try:
                    complete = self._complete and self._chunks is not None
                    body = b"".join(self._chunks) if complete and self._chunks is not None else None
                    primary = Captured(status_code(self._status), self._headers, body)
                    self._mirror.submit(self._process, self._job._replace(primary=primary))
                except Exception:
                    logger.exception("graywsgi mirror: could not queue the mirror job")
