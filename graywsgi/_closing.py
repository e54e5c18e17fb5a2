"""Run a request -- the app call, every body chunk, close() -- in its own context."""

from __future__ import annotations

import contextvars
import typing as t

from graywsgi.context import GrayContext, bind, release

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RequestScope"]


def _enter(
    app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse, gray: GrayContext
) -> tuple[contextvars.Token[GrayContext], t.Iterable[bytes], t.Iterator[bytes]]:
    token = bind(environ, gray)
    try:
        iterable = app(environ, start_response)
        return token, iterable, iter(iterable)
    except BaseException:
        release(token)
        raise


def _leave(iterable: t.Iterable[bytes], token: contextvars.Token[GrayContext]) -> None:
    try:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    finally:
        release(token)


class RequestScope:
    """The response iterable of one request, bound to one ``contextvars.Context``.

    Every piece of the request's work -- the application call, each
    ``next()`` on its body and ``close()`` -- runs inside the request's own
    :class:`contextvars.Context`, made fresh for it, where the gray context
    is bound. Whatever thread the server uses for each step, and however it
    interleaves responses (greenlet and event-loop servers iterate several
    bodies in turn on one thread), the request sees its own context and no
    other code sees it.

    PEP 3333 servers call ``close()`` after the last chunk, after an error
    while iterating and after a client disconnect; ``close()`` runs the
    wrapped iterable's own ``close()`` first (its cleanup still sees the
    context), then releases the context -- exactly once. If the application
    raises before returning, the context is released before the exception
    propagates.
    """

    __slots__ = ("_context", "_iterable", "_iterator", "_token", "_closed")

    def __init__(
        self,
        context: contextvars.Context,
        iterable: t.Iterable[bytes],
        iterator: t.Iterator[bytes],
        token: contextvars.Token[GrayContext],
    ) -> None:
        self._context = context
        self._iterable = iterable
        self._iterator = iterator
        self._token = token
        self._closed = False

    @classmethod
    def call(
        cls,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        gray: GrayContext,
    ) -> RequestScope:
        """Bind ``gray`` in a new context and call ``app`` there."""
        context = contextvars.copy_context()
        token, iterable, iterator = context.run(_enter, app, environ, start_response, gray)
        return cls(context, iterable, iterator, token)

    def __iter__(self) -> RequestScope:
        return self

    def __next__(self) -> bytes:
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._context.run(_leave, self._iterable, self._token)
