"""Run a request -- the app call, every body chunk, close() -- in its own context."""

from __future__ import annotations

import contextvars
import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RequestScope"]


class RequestScope:
    """The response iterable of one request, bound to one ``contextvars.Context``.

    Every piece of the request's work -- the application call, each
    ``next()`` on its body and ``close()`` -- runs inside the request's own
    :class:`contextvars.Context`, made fresh for it. Whatever thread the
    server uses for each step, and however it interleaves responses (greenlet
    and event-loop servers iterate several bodies in turn on one thread),
    the request sees its own context and no other code sees it.

    PEP 3333 servers call ``close()`` after the last chunk, after an error
    while iterating and after a client disconnect; ``close()`` runs the
    wrapped iterable's own ``close()`` first (its cleanup still sees the
    context), then ``on_close`` -- exactly once.
    """

    __slots__ = ("_context", "_iterable", "_iterator", "_on_close", "_closed")

    def __init__(
        self,
        context: contextvars.Context,
        iterable: t.Iterable[bytes],
        on_close: t.Callable[[], object],
    ) -> None:
        self._context = context
        self._iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None
        self._on_close = on_close
        self._closed = False

    @classmethod
    def call(
        cls,
        context: contextvars.Context,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        on_close: t.Callable[[], object],
    ) -> RequestScope:
        """Call ``app`` inside ``context``; run ``on_close`` there if it raises."""
        try:
            iterable = context.run(app, environ, start_response)
        except BaseException:
            context.run(on_close)
            raise
        return cls(context, iterable, on_close)

    def __iter__(self) -> RequestScope:
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._context.run(iter, self._iterable)
        return self._context.run(next, iterator)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._context.run(self._on_close)
