"""One response wrapper per request, shared by every graywsgi layer.

Several layers must act when a response ends -- the Guard records the
outcome in the breaker, Metrics sends the request's timing -- and Extraction
must make the gray context visible while the response body is iterated and
closed. Giving each layer a wrapper of its own would put one Python
``__next__`` and one ``close()`` per layer on every response. Instead the
outermost graywsgi layer of a request opens a :class:`RequestScope`, puts it
at ``environ["graywsgi.scope"]`` and returns it as the response; the layers
inside join it:

- :meth:`RequestScope.on_close` registers ``callback(raised)``, run once
  when the response is closed (inner layers' callbacks first, as their
  wrappers would have been closed first);
- Extraction sets :attr:`RequestScope.gray`; every ``next()`` on the body
  and the ``close()`` then run with that context bound, in whatever thread
  the server uses, and unbound again afterwards.

A layer that calls the application follows three steps::

    scope, owner = RequestScope.join(environ)
    try:
        iterable = app(environ, start_response)
    except BaseException:
        if owner:
            scope.abort()      # callbacks run with raised=True
        raise
    return scope.finish(iterable) if owner else scope.joined(iterable)

A layer inside hands up its iterable tagged with the scope
(:meth:`RequestScope.joined`, never twice for one scope); the owner makes
that tagged iterable its body as it is, so layers nested directly add
nothing per chunk. If other middleware sits between two
graywsgi layers and iterates or closes the tagged iterable itself (a
buffering or compressing middleware), the tag binds the context and notes an
error for it, as the owner would.

A scope is joinable only while its owner's application call is running, so
an environ reused for a second request (tests do that) gets a fresh scope.
When nothing needs the end of the response -- no callback, and no context to
bind or a body that is a list or tuple (iterating it runs no code) --
:meth:`finish` hands back the application's own iterable.
"""

from __future__ import annotations

import logging
import typing as t


from graywsgi.context import _current_context

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi.context import GrayContext

__all__ = ["RequestScope", "SCOPE_KEY"]

SCOPE_KEY = "graywsgi.scope"

OnClose = t.Callable[[bool], None]

logger = logging.getLogger("graywsgi")

_PLAIN_BODIES = (list, tuple)


class RequestScope:
    """The response iterable of one request, closed once for every layer."""

    __slots__ = ("gray", "raised", "calling", "_callbacks", "_body", "_closed")

    def __init__(self) -> None:
        #: The gray context bound while the body is iterated and closed.
        self.gray: GrayContext | None = None
        #: Whether iterating the body raised.
        self.raised = False
        #: True while the owner's application call runs (the scope is joinable).
        self.calling = True
        self._callbacks: list[OnClose] = []
        self._body: _Joined | None = None  # the app's iterable, once finished
        self._closed = False

    @classmethod
    def join(cls, environ: WSGIEnvironment) -> tuple[RequestScope, bool]:
        """The request's scope, and whether the caller opened (owns) it."""
        scope = environ.get(SCOPE_KEY)
        if scope.__class__ is cls and scope.calling:
            return scope, False
        scope = environ[SCOPE_KEY] = cls()
        return scope, True

    def on_close(self, callback: OnClose) -> None:
        """Run ``callback(raised)`` when the response is closed."""
        self._callbacks.append(callback)

    def abort(self) -> None:
        """The owner's application call raised: run the callbacks now.

        A callback that fails is logged: the application's exception is the
        one that propagates.
        """
        self.calling = False
        self._closed = True
        try:
            self._run_callbacks(True)
        except Exception:
            logger.exception("graywsgi: a response callback failed")

    def joined(self, iterable: t.Iterable[bytes]) -> t.Iterable[bytes]:
        """What a layer inside the owner hands up: ``iterable`` tagged with this scope."""
        if iterable.__class__ is _Joined and iterable.scope is self:
            return iterable
        return _Joined(self, iterable)

    def finish(self, iterable: t.Iterable[bytes]) -> t.Iterable[bytes]:
        """The response to hand to the server, once the owner's app returned."""
        self.calling = False
        # What a layer inside handed up is already tagged with this scope
        # (joined() never tags twice): it becomes the body as it is.
        tagged = iterable if iterable.__class__ is _Joined and iterable.scope is self else None
        app_iterable = tagged.iterable if tagged is not None else iterable
        if not self._callbacks and (self.gray is None or app_iterable.__class__ in _PLAIN_BODIES):
            return app_iterable  # nothing to do at next() or close()
        self._body = tagged if tagged is not None else _Joined(self, app_iterable)
        return self

    def __iter__(self) -> t.Iterator[bytes]:
        # The server iterates the body itself (PEP 3333 iterates iter(result)
        # and closes result): one call per chunk instead of two.
        body: _Joined = self._body  # type: ignore[assignment]  # set by finish()
        return iter(body)

    def __next__(self) -> bytes:
        body: _Joined = self._body  # type: ignore[assignment]  # set by finish()
        return body.__next__()

    def close(self) -> None:
        """Close the app's iterable, then run the callbacks, exactly once."""
        if self._closed:
            return
        self._closed = True
        body, self._body = self._body, None
        try:
            if body is not None:
                body.close()
        finally:
            if self._callbacks:
                gray = self.gray
                token = _current_context.set(gray) if gray is not None else None
                try:
                    self._run_callbacks(self.raised)
                finally:
                    if token is not None:
                        _current_context.reset(token)

    def _run_callbacks(self, raised: bool) -> None:
        # Dropped as they run: the scope sits in the environ, and callbacks
        # that hold the environ would otherwise keep a reference cycle alive
        # until the garbage collector's next pass.
        callbacks, self._callbacks = self._callbacks, []
        error: BaseException | None = None
        for callback in callbacks:
            try:
                callback(raised)
            except BaseException as exc:  # the others still run
                if error is None:
                    error = exc
        if error is not None:
            raise error


class _Joined:
    """An app's iterable, tagged with the request's scope.

    What inner layers hand up becomes the owner's body as it is (the owner
    tags its app's iterable itself when nothing inside did); the server
    iterates it directly. Middleware between two graywsgi layers that
    iterates or closes one directly gets what the owner would give: the
    gray context bound around each step and an error while iterating noted
    for the callbacks (which still run when the owner's response closes).
    """

    __slots__ = ("scope", "iterable", "_iterator")

    def __init__(self, scope: RequestScope, iterable: t.Iterable[bytes]) -> None:
        self.scope = scope
        self.iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None

    def __iter__(self) -> t.Iterator[bytes]:
        if self.iterable.__class__ in _PLAIN_BODIES:
            return iter(self.iterable)
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self.iterable)
        gray = self.scope.gray
        token = _current_context.set(gray) if gray is not None else None
        try:
            return next(iterator)
        except StopIteration:
            raise
        except BaseException:
            self.scope.raised = True
            raise
        finally:
            if token is not None:
                _current_context.reset(token)

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is None:
            return
        gray = self.scope.gray
        token = _current_context.set(gray) if gray is not None else None
        try:
            close()
        finally:
            if token is not None:
                _current_context.reset(token)
