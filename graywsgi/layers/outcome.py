"""Watch a WSGI call: its status, whether it raised, when it was closed.

The building blocks of :class:`~graywsgi.layers.scope.RequestScope` used one
call at a time, for a layer that is not part of a
:class:`~graywsgi.layers.pipeline.Pipeline` (tests drive them directly): the
pipeline does the same with the scope it opens for each request.
"""

from __future__ import annotations

import functools
import typing as t

from graywsgi.layers.scope import RequestScope, status_code

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["observe", "attempt", "Attempt", "status_code"]

OnDone = t.Callable[[t.Optional[int], bool], None]


def observe(
    app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse, on_done: OnDone
) -> t.Iterable[bytes]:
    """Call ``app``; report its status and whether it raised when the response closes.

    The report is a callback on the request's scope (opened here if this is
    the outermost graywsgi layer), not a wrapper of its own.
    """
    watch = RequestScope(start_response)  # notes the status, passes it on
    scope, owner = RequestScope.join(environ)
    try:
        iterable = app(environ, watch)
    except BaseException:
        if owner:
            scope.abort()
        on_done(watch.code, True)
        raise
    scope.on_close(lambda raised: on_done(watch.code, raised))
    return scope.finish(iterable) if owner else scope.joined(iterable)


class Attempt(t.NamedTuple):
    """What :func:`attempt` found: a committed response, or a failure to retry."""

    response: t.Iterable[bytes] | None  #: committed (``None`` when failed)
    status: int | None  #: the status the app chose
    raised: bool  #: the app raised before its status was known


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
    held = RequestScope(start_response)
    held.hold()
    try:
        iterable = app(environ, held)
    except Exception:
        if held.committed:
            raise
        return Attempt(None, held.code, True)
    if not held.settle(iterable, failed):
        return Attempt(None, held.code, held.raised or held.line is None)
    code = held.code
    report = functools.partial(on_done, code)  # on_done(code, raised)
    if held.first is not None:  # the first chunk was read: the held scope serves the body
        held.on_close(report)
        return Attempt(held.finish(iterable), code, False)
    scope, owner = RequestScope.join(environ)
    scope.on_close(report)
    return Attempt(scope.finish(iterable) if owner else scope.joined(iterable), code, False)
