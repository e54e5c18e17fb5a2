"""
Gray context
============

Every request that passes through graywsgi carries one immutable
:class:`GrayContext`: who is asking (gray id, canary id, tenant, role), what
they asked for (env, version, API version, traffic colour), how the request
is traced (request id, ``traceparent``), what the gray logic decided (route,
A/B group), how well extraction went (degrade level) and where each
identifier came from (:class:`Source`).

The context is bound for the duration of the request in a
:class:`contextvars.ContextVar` and exposed two ways:

- :data:`graywsgi.current`, a read-only :class:`werkzeug.local.LocalProxy`.
  Business code reads it (``current.route``) in Flask views, Django views,
  templates and streaming generators alike;
- ``environ["graywsgi.context"]`` (Flask: ``request.environ``, Django:
  ``request.META``).

Business code can read the context but never rebind it: it is an immutable
named tuple, and the proxy has no setter. Only graywsgi's layers replace it
(:func:`bind` and :func:`replace` do what they do, for layers of your own).

The gray context is bound for the application call, and again around every
``next()`` on the response body and its ``close()``, in whatever thread the
server uses for each step; between those steps it is unbound. So it is never
visible to another request or thread -- also when a server closes a response
on another thread, or iterates several responses in turn on one thread. It
is released for good when the WSGI response iterable is *closed* -- not when
the application call returns, because a streaming body runs after that --
exactly once, also when the application raises before returning or while
its body is iterated. (One response wrapper per request does this for every
graywsgi layer; a body that is a plain list or tuple runs no code while it
is iterated, so it is handed back unwrapped.)

Work handed to another thread does not see the context unless it is carried
over; :func:`carry_context` does that::

    pool.submit(carry_context(send_audit_event), payload)
"""

from __future__ import annotations

import contextvars
import enum
import types
import typing as t

from werkzeug.local import LocalProxy

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi.core.version import VersionContext

__all__ = [
    "GrayContext",
    "DegradeLevel",
    "Source",
    "current",
    "get_current",
    "carry_context",
    "ENVIRON_KEY",
]

ENVIRON_KEY = "graywsgi.context"

P = t.ParamSpec("P")
R = t.TypeVar("R")


class DegradeLevel(enum.IntEnum):
    """How far extraction had to degrade for this request.

    ``NONE``: every identifier present was valid. ``L1``: one identifier was
    invalid (or a required one missing) and was dropped. ``L2``: several
    failed, so the request carries a fallback context. ``L3``: the
    extraction breaker was open, so nothing was parsed.
    """

    NONE = 0
    L1 = 1
    L2 = 2
    L3 = 3


class Source(str, enum.Enum):
    """Where an identifier in the context came from.

    ``TRUSTED``: a header from a trusted source. ``SIGNED``: a header covered
    by a valid gateway signature. ``UNTRUSTED``: a header or query parameter
    honoured although no trust boundary vouches for it. ``FALLBACK``: a
    value graywsgi substituted because extraction degraded. ``GENERATED``: a
    value graywsgi made up because none was sent (the request id).
    """

    TRUSTED = "trusted"
    SIGNED = "signed"
    UNTRUSTED = "untrusted"
    FALLBACK = "fallback"
    GENERATED = "generated"


_EMPTY_SOURCES: t.Mapping[str, Source] = types.MappingProxyType({})


class GrayContext(t.NamedTuple):
    """The gray-release facts about one request. Immutable.

    A :class:`typing.NamedTuple`, because it is made for every request and
    a named tuple is several times cheaper to create than a frozen
    dataclass. Build new ones with :meth:`evolve`.

    >>> ctx = GrayContext(request_id="r-1", gray_id="user-42")
    >>> ctx.route is None, ctx.degrade_level
    (True, <DegradeLevel.NONE: 0>)
    >>> ctx.evolve(route="canary").route
    'canary'

    :param request_id: ``X-Request-ID`` as sent, or generated.
    :param gray_id: ``X-Gray-ID`` (or the ``gray_id`` query parameter), as text.
    :param gray_key: the bytes of the gray id exactly as the client sent
        them; this is what the split hashes.
    :param env: ``X-Env``.
    :param version: ``X-Version``.
    :param api_version: ``X-Api-Version`` as a version context.
    :param canary_id: ``X-Canary-ID``.
    :param traffic_color: ``X-Traffic-Color``.
    :param trace_parent: the W3C ``traceparent`` header.
    :param tenant: the tenant (from a resolver, or ``"default"`` in a
        fallback context).
    :param role: the role (from a resolver, or ``"GUEST"`` in a fallback
        context).
    :param route: the route (cluster) the split chose; ``None`` before a
        split has run.
    :param group: the A/B group, when a split assigns one.
    :param rules_version: the version id of the rule set that decided the
        route (set by :class:`graywsgi.layers.router.Router`).
    :param route_reason: why this route (``color``, ``version``, ``weight``,
        ``default``, ``no_match``, ``rerouted: breaker open``, ``rerouted:
        rolled back``, ``retried on the default cluster``).
    :param protocol_stage: the API's retirement stage for this request
        (``compat``, ``transition``, ``switch``), set by
        :class:`graywsgi.evolution.stages.ProtocolEvolution` for old-API requests.
    :param degrade_level: how far extraction degraded.
    :param dropped: names of the identifiers that were invalid and dropped.
    :param sources: where each identifier present came from (a read-only
        mapping; pass a :class:`types.MappingProxyType` to keep it so).
    """

    request_id: str
    gray_id: str | None = None
    gray_key: bytes | None = None
    env: str | None = None
    version: str | None = None
    api_version: VersionContext | None = None
    canary_id: str | None = None
    traffic_color: str | None = None
    trace_parent: str | None = None
    tenant: str | None = None
    role: str | None = None
    route: str | None = None
    group: str | None = None
    rules_version: str | None = None
    route_reason: str | None = None
    protocol_stage: str | None = None
    degrade_level: DegradeLevel = DegradeLevel.NONE
    dropped: tuple[str, ...] = ()
    sources: t.Mapping[str, Source] = _EMPTY_SOURCES

    @property
    def is_fallback(self) -> bool:
        """Whether this is a fallback context (degrade level L2 or L3)."""
        return self.degrade_level >= DegradeLevel.L2

    def evolve(self, **changes: t.Any) -> GrayContext:
        """Return a copy with ``changes`` applied (the original is unchanged)."""
        return self._replace(**changes)


_ROUTE = GrayContext._fields.index("route")
_AFTER_REASON = GrayContext._fields.index("route_reason") + 1
_new_context = tuple.__new__


def with_decision(
    context: GrayContext, route: str, group: str | None, rules_version: str | None, route_reason: str | None
) -> GrayContext:
    """``context`` with a routing decision: ``evolve(route=..., group=...,
    rules_version=..., route_reason=...)``, built positionally because every
    request needs it (``_replace`` costs several times more).

    >>> with_decision(GrayContext("r-1"), "canary", "b", "v1", "weight").route_reason
    'weight'
    """
    return _new_context(
        GrayContext, (*context[:_ROUTE], route, group, rules_version, route_reason, *context[_AFTER_REASON:])
    )


_current_context: contextvars.ContextVar[GrayContext] = contextvars.ContextVar(
    "graywsgi.context"
)

current: GrayContext = LocalProxy(  # type: ignore[assignment]
    _current_context,
    unbound_message=(
        "graywsgi.current is only available while a request passes through"
        " graywsgi middleware (or in work wrapped by graywsgi.carry_context)."
    ),
)
"""The gray context of the request being handled, as a read-only proxy."""


def get_current() -> GrayContext | None:
    """Return the current gray context, or ``None`` outside a request."""
    return _current_context.get(None)


def bind(environ: WSGIEnvironment, context: GrayContext) -> contextvars.Token[GrayContext]:
    """Bind ``context`` for this request (what Extraction does around the app call).

    :return: the token that :func:`release` needs.
    """
    environ[ENVIRON_KEY] = context
    return _current_context.set(context)


def replace(environ: WSGIEnvironment, context: GrayContext) -> None:
    """Replace the bound context with a new one (a later layer's decision).

    The token from the first :func:`bind` still restores the state from
    before the request, so no extra release is needed.
    """
    environ[ENVIRON_KEY] = context
    _current_context.set(context)


def release(token: contextvars.Token[GrayContext]) -> None:
    """Undo :func:`bind`: the context is no longer current.

    Call it in the :class:`contextvars.Context` where :func:`bind` made the
    token (the same thread, before the request's app call returns).
    """
    _current_context.reset(token)


def carry_context(fn: t.Callable[P, R]) -> t.Callable[P, R]:
    """Wrap ``fn`` so it runs with a copy of the caller's context variables.

    Use it to hand work to another thread (``threading.Thread``,
    ``concurrent.futures``) while keeping :data:`current` readable there::

        executor.submit(carry_context(notify), order_id)

    :param fn: any callable.
    :return: a callable that runs ``fn`` in a copy of the context captured
        now, when :func:`carry_context` is called.
    """
    captured = contextvars.copy_context()

    def run_with_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    run_with_context.__wrapped__ = fn  # type: ignore[attr-defined]
    return run_with_context
