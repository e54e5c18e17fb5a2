"""One response object per request, shared by every graywsgi layer.

A :class:`RequestScope` is three things for one request:

- the ``start_response`` the application is given: it notes the status
  code (:attr:`RequestScope.code`) and passes the call on to the server --
  or, in *hold* mode (:meth:`RequestScope.hold`), keeps the status back
  until :meth:`RequestScope.commit`, so that a failed canary can still be
  served again by stable (the Guard's lossless retry);
- the response body the server iterates and closes: every ``next()`` and the
  body's ``close()`` run with the request's gray context bound (:attr:`gray`),
  in whatever thread the server uses, and unbound again afterwards (so do the
  callbacks below); an error while iterating is noted (:attr:`raised`);
- the scope that layers join: the outermost graywsgi layer of a request
  opens it, puts it at ``environ["graywsgi.scope"]`` and returns it as the
  response. A layer inside -- one that foreign middleware separates from the
  outer one, so that the two did not fuse into one
  :class:`~graywsgi.layers.pipeline.Pipeline` -- joins it: it registers
  ``callback(raised)`` with :meth:`on_close` (run once when the response is
  closed, inner layers' first) and hands up its iterable tagged with the
  scope (:meth:`joined`).

A layer that calls the application follows three steps::

    scope, owner = RequestScope.join(environ)
    try:
        iterable = app(environ, start_response)
    except BaseException:
        if owner:
            scope.abort()      # callbacks run with raised=True
        raise
    return scope.finish(iterable) if owner else scope.joined(iterable)

The owner makes a tagged iterable its body as it is, so layers nested
directly add nothing per chunk. If other middleware sits between two
graywsgi layers and iterates or closes the tagged iterable itself (a
buffering or compressing middleware), the tag binds the context and notes an
error for it, as the owner would.

A scope is joinable only while its owner's application call is running, so
an environ reused for a second request (tests do that) gets a fresh scope.
When nothing needs the end of the response -- nothing to run at close, and
no context to bind or a body that is a list or tuple (iterating it runs no
code) -- :meth:`finish` hands back the application's own iterable.

This module is compiled by Cython when the fast path is built (see
:mod:`graywsgi.speedups`); the same source runs as plain Python otherwise.
"""

from __future__ import annotations

import logging
import typing as t

from graywsgi.core.context import _current_context

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from graywsgi.core.context import GrayContext

__all__ = ["RequestScope", "SCOPE_KEY", "status_code"]

SCOPE_KEY = "graywsgi.scope"

OnClose = t.Callable[[bool], None]

logger = logging.getLogger("graywsgi")

_PLAIN_BODIES = (list, tuple)
_END = object()  # what next() gives back when a body has no more chunks
_NOT_PARSED = object()
#: Status line -> code, for the lines applications send again and again.
_CODES: dict[str, int | None] = {}
_MAX_CODES = 512


def status_code(status: str) -> int | None:
    """``"503 Service Unavailable"`` -> 503; ``None`` if malformed (the
    first three characters are not ASCII digits)."""
    if cython.compiled and type(status) is str:  # three characters read in C: no cache needed
        return _capi.status_code_of(status)
    code = _CODES.get(status, _NOT_PARSED)
    if code is _NOT_PARSED:
        head = status[:3]
        code = int(head) if len(head) == 3 and head.isdigit() and head.isascii() else None
        if len(_CODES) < _MAX_CODES:
            _CODES[status] = code
    return code  # type: ignore[return-value]


class RequestScope:
    """The response of one request: ``start_response`` wrapper, body and scope.

    A new scope starts with every field ``None``, ``False`` or ``0`` but
    :attr:`calling` (``True``) and :attr:`start_response`: compiled, the fields
    are members of a C struct (``_closing.pxd``) that start zeroed; as plain
    Python, the class attributes set below the class (:data:`_FIELDS`) stand
    in for them, so that a new scope costs no store for a field it never sets.
    """

    #: The gray context bound while the body is iterated and closed.
    gray: GrayContext | None
    #: Whether iterating the body raised.
    raised: bool
    #: True while the owner's application call runs (the scope is joinable).
    calling: bool
    #: The status code the application chose (``None``: none, or malformed).
    code: int | None
    #: The server's ``start_response``.
    start_response: StartResponse | None
    #: Whether the status is held back (see :meth:`hold`), and whether it was passed on.
    holding: bool
    committed: bool
    #: The held status line, headers and ``exc_info``.
    line: str | None
    headers: list[tuple[str, str]] | None
    exc_info: t.Any
    #: The server's ``write()``, once the held status was passed on.
    sent: t.Callable[[bytes], object] | None
    #: The application's iterable, once :meth:`finish` made this the response.
    body: t.Iterable[bytes] | None
    #: A chunk read ahead to learn the status (:meth:`settle`), served first.
    first: bytes | None
    _iterator: t.Iterator[bytes] | None
    _callbacks: list[OnClose] | None
    _closed: bool

    def __init__(self, start_response: StartResponse | None = None) -> None:
        self.start_response = start_response
        self.calling = True

    # -- joining -------------------------------------------------------------

    @classmethod
    def join(cls, environ: WSGIEnvironment) -> tuple[RequestScope, bool]:
        """The request's scope, and whether the caller opened (owns) it."""
        scope = environ.get(SCOPE_KEY)
        if isinstance(scope, RequestScope) and scope.calling:
            return scope, False
        scope = cls()
        environ[SCOPE_KEY] = scope
        return scope, True

    def on_close(self, callback: OnClose) -> None:
        """Run ``callback(raised)`` when the response is closed."""
        if self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def joined(self, iterable: t.Iterable[bytes]) -> t.Iterable[bytes]:
        """What a layer inside the owner hands up: ``iterable`` tagged with this scope."""
        if isinstance(iterable, _Joined) and iterable.scope is self:
            return iterable
        return _Joined(self, iterable)

    # -- start_response ------------------------------------------------------

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], object]:
        """The ``start_response`` the application is given."""
        if self.holding:
            if self.committed:  # status already sent: let the server decide (re-raises exc_info)
                return self.start_response(status, headers, exc_info)  # type: ignore[misc]
            self.line = status
            self.headers = headers
            self.exc_info = exc_info
            self.code = status_code(status)
            if cython.compiled:  # self.write, without the attribute lookup along the MRO
                return _capi.bound_method(_WRITE, self)
            return self.write
        self.code = status_code(status)
        return self.start_response(status, headers, exc_info)  # type: ignore[misc]

    def hold(self) -> None:
        """Keep the status back until :meth:`commit` (for a retry elsewhere)."""
        self.holding = True

    def commit(self) -> t.Callable[[bytes], object]:
        """Pass the held status on to the server (once); its ``write()``."""
        if not self.committed:
            self.committed = True
            self.sent = self.start_response(self.line, self.headers, self.exc_info)  # type: ignore[misc,arg-type]
        return self.sent  # type: ignore[return-value]  # a server may return None; write() is then unusable

    def write(self, data: bytes) -> object:
        """The legacy ``write()`` of a held status: commits it at once.
        (Compiled, a held ``start_response`` returns this method bound
        without looking it up: subclasses do not override it.)"""
        return self.commit()(data)

    def settle(self, iterable: t.Iterable[bytes], failed: t.Callable[[int | None], bool] | None) -> bool:
        """After a held application returned: commit its status, or give up.

        If the status is not known yet (some applications call
        ``start_response`` on the first chunk), the first chunk is read and
        kept for the body. The status is given up -- and ``iterable`` closed
        -- when the application never chose one, raised while starting its
        body, or chose one for which ``failed(code)`` is true; nothing has
        reached the client then. A status the legacy ``write()`` already
        sent is never given up. ``failed=None`` is the usual rule, without
        a call: no status, or a 5xx.

        :return: ``True`` if the status was committed (the response is
            served), ``False`` if it was given up (serve it elsewhere).
        """
        if self.line is None:
            try:
                for chunk in iterable:
                    self.first = chunk
                    break
            except Exception:
                _close(iterable)
                if self.committed:
                    raise
                self.raised = True  # tells the caller the app raised
                return False
        if self.line is None or (not self.committed and (
            (self.code is None or self.code >= 500) if failed is None else failed(self.code)
        )):
            _close(iterable)
            return False
        self.commit()
        return True

    # -- the response --------------------------------------------------------

    def abort(self) -> None:
        """The owner's application call raised: run the callbacks now.

        A callback that fails is logged: the application's exception is the
        one that propagates.
        """
        self.calling = False
        self._closed = True
        try:
            self._ended(True)
        except Exception:
            logger.exception("graywsgi: a response callback failed")

    def finish(self, iterable: t.Iterable[bytes]) -> t.Iterable[bytes]:
        """The response to hand to the server, once the owner's app returned."""
        self.calling = False
        # What a layer inside handed up is already tagged with this scope
        # (joined() never tags twice): its iterable becomes the body.
        if isinstance(iterable, _Joined) and iterable.scope is self:
            iterable = iterable.iterable
        if not self._needs_close() and self.first is None and (
            self.gray is None or type(iterable) in _PLAIN_BODIES
        ):
            return iterable  # nothing to do at next() or close()
        self.body = iterable
        return self

    def __iter__(self) -> t.Iterator[bytes]:
        body = self.body
        if self.first is None and type(body) in _PLAIN_BODIES:
            return iter(body)  # type: ignore[arg-type]  # a list or a tuple: the server iterates it itself
        return self

    def __next__(self) -> bytes:
        first = self.first
        if first is not None:
            self.first = None
            return first
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self.body)  # type: ignore[arg-type]
        gray = self.gray
        # next() with a default, not a caught StopIteration: compiled, ending
        # the iteration then costs no traceback (one per response otherwise).
        token = _bind(gray) if gray is not None else None
        try:
            chunk = next(iterator, _END)
        except BaseException:
            self.raised = True
            raise
        finally:
            if token is not None:
                _unbind(token)
        if chunk is _END:
            raise StopIteration
        return chunk  # type: ignore[return-value]  # bytes: _END was not returned

    def close(self) -> None:
        """Close the app's iterable, then run what waits for the end, exactly once."""
        if self._closed:
            return
        self._closed = True
        body = self.body
        self.body = None
        self._iterator = None
        plain = body is None or type(body) in _PLAIN_BODIES
        # The context is bound while code of the application or of a layer
        # inside runs: the body's close() and the callbacks. graywsgi's own
        # steps at the end (the Guard's outcome, the Metrics datagram) read
        # the request's environ, not `current`.
        gray = self.gray
        token = _bind(gray) if gray is not None and not (plain and self._callbacks is None) else None
        try:
            if not plain:
                _close(body)  # type: ignore[arg-type]  # not None: `plain` says so
        finally:
            try:
                self._ended(self.raised)
            finally:
                if token is not None:
                    _unbind(token)

    # -- what runs at the end --------------------------------------------------

    def _needs_close(self) -> bool:
        """Whether anything waits for the end of the response."""
        return self._callbacks is not None

    def _ended(self, raised: bool) -> None:
        """The response ended (``raised``: with an error): run the callbacks.

        Subclasses (:class:`graywsgi.layers.pipeline.Exchange`) run their own work
        after the callbacks of the layers inside.
        """
        self._run_callbacks(raised)

    def _run_callbacks(self, raised: bool) -> None:
        # Dropped as they run: the scope sits in the environ, and callbacks
        # that hold the environ would otherwise keep a reference cycle alive
        # until the garbage collector's next pass.
        callbacks = self._callbacks
        if callbacks is None:
            return
        self._callbacks = None
        error: BaseException | None = None
        for callback in callbacks:
            try:
                callback(raised)
            except BaseException as exc:  # the others still run
                if error is None:
                    error = exc
        if error is not None:
            raise error


#: The fields of a RequestScope and the value each starts with (see the class).
_FIELDS: dict[str, t.Any] = {
    "gray": None, "raised": False, "calling": False, "code": None, "start_response": None, "holding": False,
    "committed": False, "line": None, "headers": None, "exc_info": None, "sent": None, "body": None, "first": None,
    "_iterator": None, "_callbacks": None, "_closed": False,
}
if not cython.compiled:
    for _name, _value in _FIELDS.items():
        setattr(RequestScope, _name, _value)

#: RequestScope.write, unbound: a held start_response returns it bound (compiled).
_WRITE = RequestScope.write


def _bind(gray: GrayContext) -> t.Any:
    """Make ``gray`` the current context; the token for :func:`_unbind`."""
    if cython.compiled:
        return _capi.context_set(_current_context, gray)
    return _current_context.set(gray)


def _unbind(token: t.Any) -> None:
    """Undo :func:`_bind`."""
    if cython.compiled:
        _capi.context_reset(_current_context, token)
    else:
        _current_context.reset(token)


def _close(iterable: t.Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _Joined:
    """An app's iterable, tagged with the request's scope.

    What inner layers hand up becomes the owner's body as it is; the server
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
        if type(self.iterable) in _PLAIN_BODIES:
            return iter(self.iterable)
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self.iterable)
        gray = self.scope.gray
        token = _bind(gray) if gray is not None else None
        try:
            chunk = next(iterator, _END)
        except BaseException:
            self.scope.raised = True
            raise
        finally:
            if token is not None:
                _unbind(token)
        if chunk is _END:
            raise StopIteration
        return chunk  # type: ignore[return-value]  # bytes: _END was not returned

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
