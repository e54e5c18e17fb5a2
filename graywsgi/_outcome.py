"""Watch a WSGI call: its status, whether it raised, when it was closed."""

from __future__ import annotations

import functools
import typing as t

from graywsgi._closing import RequestScope

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["observe", "attempt", "Attempt", "status_code"]

OnDone = t.Callable[[t.Optional[int], bool], None]


def status_code(status: str) -> int | None:
    """``"503 Service Unavailable"`` -> 503; ``None`` if malformed."""
    head = status[:3]
    return int(head) if head.isdigit() else None


class _Observed:
    """A response iterable that reports (status, raised) once, at close."""

    __slots__ = ("_iterable", "_iterator", "_status", "_on_done", "_raised", "_done", "_first")

    def __init__(
        self,
        iterable: t.Iterable[bytes],
        status: list[int | None],
        on_done: OnDone,
        first: list[bytes] | None = None,
    ) -> None:
        self._iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None
        self._status = status
        self._on_done = on_done
        self._raised = False
        self._done = False
        self._first = first

    def __iter__(self) -> _Observed:
        return self

    def __next__(self) -> bytes:
        if self._first:
            return self._first.pop()
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            return next(self._iterator)
        except StopIteration:
            raise
        except BaseException:
            self._raised = True
            raise

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._on_done(self._status[0], self._raised)


def observe(
    app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse, on_done: OnDone
) -> t.Iterable[bytes]:
    """Call ``app``; report its status and whether it raised when the response closes.

    The report is a callback on the request's
    :class:`~graywsgi._closing.RequestScope` (opened here if this is the
    outermost graywsgi layer), not a wrapper of its own.
    """
    status: list[int | None] = [None]

    def capture(
        status_line: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], object]:
        status[0] = status_code(status_line)
        return start_response(status_line, headers, exc_info)

    scope, owner = RequestScope.join(environ)
    try:
        iterable = app(environ, capture)
    except BaseException:
        if owner:
            scope.abort()
        on_done(status[0], True)
        raise
    scope.on_close(lambda raised: on_done(status[0], raised))
    return scope.finish(iterable) if owner else scope.joined(iterable)


class Attempt(t.NamedTuple):
    """What :func:`attempt` found: a committed response, or a failure to retry."""

    response: t.Iterable[bytes] | None  #: committed (``None`` when failed)
    status: int | None  #: the status the app chose
    raised: bool  #: the app raised before its status was known


class _Held:
    """The ``start_response`` :func:`attempt` hands the app: it holds the
    status line, headers and ``exc_info`` until :meth:`commit`."""

    __slots__ = ("start_response", "line", "headers", "exc_info", "code", "committed", "sent")

    def __init__(self, start_response: StartResponse) -> None:
        self.start_response = start_response
        self.line: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.exc_info: t.Any = None
        self.code: int | None = None
        self.committed = False  # the held status went to the server
        self.sent: t.Callable[[bytes], object] | None = None  # the server's write(), once committed

    def hold(
        self, status_line: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], object]:
        if self.committed:  # status already sent: let the server decide (re-raises exc_info)
            return self.start_response(status_line, headers, exc_info)
        self.line, self.headers, self.exc_info = status_line, headers, exc_info
        self.code = status_code(status_line)
        return self.write

    def commit(self) -> t.Callable[[bytes], object]:
        """Pass the held status on to the server (once); its ``write()``."""
        if not self.committed:
            self.committed = True
            self.sent = self.start_response(self.line, self.headers, self.exc_info)  # type: ignore[arg-type]
        return self.sent  # type: ignore[return-value]  # a server may return None; write() is then unusable

    def write(self, data: bytes) -> object:
        return self.commit()(data)


def attempt(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    on_done: OnDone,
    *,
    failed: t.Callable[[int | None], bool],
) -> Attempt:
    """Call ``app`` but hold its status back until it is known.

    If the app raises before its status is known, or chooses a status for
    which ``failed(status)`` is true, nothing has reached the client: the
    app's response is closed and an :class:`Attempt` with ``response=None``
    comes back, so the caller can serve the request elsewhere. Otherwise the
    status is passed on and the response is returned, observed as by
    :func:`observe`. An app that uses the legacy ``write()`` callable
    commits its status at once and is never retried.
    """
    held = _Held(start_response)
    try:
        iterable = app(environ, held.hold)
    except Exception:
        if held.committed:
            raise
        return Attempt(None, held.code, True)
    first: list[bytes] = []
    if held.line is None:  # some apps call start_response on the first chunk
        try:
            for chunk in iterable:
                first.append(chunk)
                break
        except Exception:
            _close(iterable)
            if held.committed:
                raise
            return Attempt(None, held.code, True)
    code = held.code
    if held.line is None or (not held.committed and failed(code)):
        _close(iterable)
        return Attempt(None, code, held.line is None)
    held.commit()
    if first:
        return Attempt(_Observed(iterable, [code], on_done, first), code, False)
    scope, owner = RequestScope.join(environ)
    scope.on_close(functools.partial(on_done, code))  # on_done(code, raised)
    # tuple.__new__: the NamedTuple's keyword constructor costs a call more.
    return tuple.__new__(Attempt, (scope.finish(iterable) if owner else scope.joined(iterable), code, False))


def _close(iterable: t.Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()
