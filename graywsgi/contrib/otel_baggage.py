"""
OpenTelemetry baggage
=====================

The gray context as OpenTelemetry baggage, for the services a request
calls: :class:`GrayBaggage` (a WSGI middleware inside the Router) puts the
entries of :func:`gray_baggage` into the current context while the
application runs and while its body is iterated, so
``opentelemetry.propagate.inject`` -- and every instrumented HTTP client --
carries them downstream; :func:`baggage_context` reads them back out in the
next service. The gray id is **not** among the default keys: baggage leaves
your service. Part of :mod:`graywsgi.contrib.otel` (the ``otel`` extra),
which imports these names.
"""

from __future__ import annotations

import logging
import typing as t

try:
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import context as otel_context
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "graywsgi.contrib.otel needs opentelemetry-api: pip install graywsgi[otel]"
    ) from exc

from graywsgi.contrib._recording import RateLimitedErrors
from graywsgi.core.context import ENVIRON_KEY, GrayContext

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["GrayBaggage", "gray_baggage", "baggage_context", "DEFAULT_BAGGAGE_KEYS"]

logger = logging.getLogger("graywsgi.contrib.otel")

#: The context fields :class:`GrayBaggage` puts into baggage by default. Add
#: ``"gray_id"`` only if the user id may leave your service (see the docs).
DEFAULT_BAGGAGE_KEYS: tuple[str, ...] = ("route", "group", "version", "env", "canary_id", "traffic_color")
_BAGGAGE_FIELDS = frozenset({
    "gray_id", "request_id", "env", "version", "canary_id", "traffic_color", "tenant", "role",
    "route", "group", "rules_version", "route_reason",
})


def gray_baggage(context: GrayContext | None, keys: t.Iterable[str] = DEFAULT_BAGGAGE_KEYS,
                 namespace: str = "graywsgi") -> dict[str, str]:
    """The baggage entries for ``context``: ``{"<namespace>.<field>": value}``
    for each field in ``keys`` the context has (``None`` values left out).

    >>> gray_baggage(GrayContext("r-1", gray_id="u-7", route="canary"))
    {'graywsgi.route': 'canary'}
    >>> gray_baggage(GrayContext("r-1", gray_id="u-7"), keys=("gray_id",))
    {'graywsgi.gray_id': 'u-7'}
    """
    if context is None:
        return {}
    entries = {}
    for key in keys:
        if key not in _BAGGAGE_FIELDS:
            raise ValueError(f"not a baggage field of the gray context: {key!r}")
        value = getattr(context, key)
        if value is not None:
            entries[f"{namespace}.{key}"] = str(value)
    return entries


def baggage_context(context: otel_context.Context | None = None, namespace: str = "graywsgi") -> dict[str, str]:
    """The ``<namespace>.*`` baggage entries of an OTel context (the current
    one by default) as ``{field: value}``: what an upstream service sent, once
    your propagator (or ``opentelemetry-instrumentation-wsgi``) extracted it."""
    prefix = namespace + "."
    return {
        key[len(prefix):]: str(value)
        for key, value in otel_baggage.get_all(context).items()
        if key.startswith(prefix)
    }


class GrayBaggage:
    """Put the gray context into OTel baggage while ``app`` runs; see the module docs.

    Place it where the context is complete: inside the Router, around your
    application (``Router(GrayBaggage(app), ...)``; wrap each app of the
    Router's ``apps`` too). Entries are ``<namespace>.<field>`` for each
    field in ``keys`` the request has, added to the current context's
    baggage (an entry of the same name from upstream is replaced).

    :param keys: context fields to send; ``gray_id`` only if a user id may
        leave your service.
    """

    def __init__(self, app: WSGIApplication, *, keys: t.Iterable[str] = DEFAULT_BAGGAGE_KEYS,
                 namespace: str = "graywsgi", error_interval: float = 60.0) -> None:
        self.app = app
        self.keys = tuple(keys)
        self.namespace = namespace
        for key in self.keys:
            if key not in _BAGGAGE_FIELDS:
                raise ValueError(f"not a baggage field of the gray context: {key!r}")
        self._errors = RateLimitedErrors(logger, "otel", error_interval)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        context: otel_context.Context | None = None
        try:
            gray = environ.get(ENVIRON_KEY)
            entries = gray_baggage(gray if isinstance(gray, GrayContext) else None, self.keys, self.namespace)
            if entries:
                context = otel_context.get_current()
                for key, value in entries.items():
                    context = otel_baggage.set_baggage(key, value, context)
        except Exception:
            self._errors.failed("setting baggage")
            context = None
        if context is None:
            return self.app(environ, start_response)
        token = _attach(context)
        try:
            iterable = self.app(environ, start_response)
        finally:
            _detach(token)
        return _InContext(iterable, context)


class _InContext:
    """A response iterable iterated (and closed) with ``context`` attached."""

    __slots__ = ("_iterable", "_iterator", "_context")

    def __init__(self, iterable: t.Iterable[bytes], context: otel_context.Context) -> None:
        self._iterable = iterable
        self._iterator: t.Iterator[bytes] | None = None
        self._context = context

    def __iter__(self) -> _InContext:
        return self

    def __next__(self) -> bytes:
        token = _attach(self._context)
        try:
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            return next(self._iterator)
        finally:
            _detach(token)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            token = _attach(self._context)
            try:
                close()
            finally:
                _detach(token)


def _attach(context: otel_context.Context | None) -> object:
    if context is None:
        return None
    try:
        return otel_context.attach(context)
    except Exception:  # pragma: no cover - the API's attach does not raise
        logger.debug("graywsgi otel: attach failed", exc_info=True)
        return None


def _detach(token: object) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]  # the API types its token as Token[Context]
