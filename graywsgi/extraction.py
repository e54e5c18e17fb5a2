"""
Extraction
==========

The first gray layer: it reads the gray identifiers of a request, builds its
:class:`~graywsgi.context.GrayContext`, binds it for the request and
releases it when the response is closed.

.. code-block:: python

    from graywsgi import Extraction
    app.wsgi_app = Extraction(app.wsgi_app)

What it reads
-------------

=====================  ==========================  ===========================
Header                 Context field               Notes
=====================  ==========================  ===========================
``X-Gray-ID``          ``gray_id``, ``gray_key``   falls back to ``?gray_id=``
``X-Env``              ``env``
``X-Version``          ``version``
``X-Canary-ID``        ``canary_id``
``X-Traffic-Color``    ``traffic_color``
``X-Api-Version``      ``api_version``             a SemVer version or range
``X-Request-ID``       ``request_id``              generated when absent
``traceparent``        ``trace_parent``            W3C Trace Context syntax
=====================  ==========================  ===========================

Header names are matched case-insensitively (the WSGI server folds them into
``HTTP_*`` keys). Values are trimmed of surrounding spaces and tabs and must
then be RFC 9110 field values (see :mod:`graywsgi.headers`) no longer than
``max_length`` bytes. An empty value counts as absent.

The query fallback applies only when the header is absent. The parameter is
percent-decoded (``+`` is a space); a malformed escape means the parameter
is absent. The decoded value is checked like a header value but not
trimmed: ``?gray_id=%20a`` is the id ``" a"``. ``gray_key`` keeps the exact bytes the client sent -- for a
header, the latin-1 encoding of the WSGI string (PEP 3333); for the query,
the decoded bytes -- and that is what the split hashes. ``gray_id`` and the
other text fields are those bytes decoded as UTF-8, or, when they are not
UTF-8, the WSGI (latin-1) string unchanged. Text that would carry a control,
format or line-separator character (a C1 control such as NEL, U+2028, a bidi
override) is invalid: such values must not reach logs or outgoing headers.

Degrade levels
--------------

A *failure* is an identifier that is present but invalid, a required
identifier (``required=``) that is missing, or a resolver that raised.

- **L1** -- one failure (fewer than ``fallback_after``): the identifier is
  dropped, its name is listed in ``context.dropped``, the request passes.
- **L2** -- ``fallback_after`` (default 2) failures or more: the request gets
  the *fallback context*: request id ``fallback-<uuid4>``, tenant
  ``default``, role ``GUEST`` and no gray identifiers, so the split sends it
  to stable.
- **L3** -- the :class:`~graywsgi.extraction_breaker.ExtractionBreaker` is
  open: nothing is parsed and the request gets the fallback context. With
  ``refuse_when_open=True`` (opt-in, never the default) it is answered 503
  with ``Retry-After`` and a problem+json body instead.

Each level is in ``context.degrade_level`` and is logged on the
``graywsgi.extraction`` logger (L1 at INFO, L2 at WARNING, L3 at DEBUG per
request plus a WARNING when the breaker opens).

Resolvers
---------

A resolver is a callable ``resolver(environ) -> Mapping[str, str] | None``
that derives ``tenant``, ``role`` or ``gray_id`` from the request (for
example by decoding a user-context header). Resolvers run after the headers
are parsed, under the extraction breaker: one that raises, or returns a key
it may not set, counts as a failure; one resolver slower than the breaker's
``slow_call`` opens it (each resolver is timed on its own).

Failing open
------------

An unexpected error inside extraction is logged and the request is served
with the fallback context (so by stable); graywsgi never turns its own bug
into a 500.

Trust
-----

Gray headers decide who gets unreleased code. With ``trust=`` a
:class:`~graywsgi.trust.TrustPolicy`, they count only from trusted proxy
networks or with a valid gateway signature: from anyone else they are
removed from the environ before extraction (and the application) sees them,
and the ``?gray_id=`` fallback is ignored, so the split falls back to a key
the service owns. Honoured gray identifiers are recorded as
:attr:`~graywsgi.context.Source.TRUSTED` or
:attr:`~graywsgi.context.Source.SIGNED`.

Security note: without a policy, Extraction honours every identifier and
records it as :attr:`~graywsgi.context.Source.UNTRUSTED`: anyone who can
reach the application can send ``X-Gray-ID`` or ``X-Traffic-Color`` and
choose their route. That is for development, or behind a gateway that
strips these headers from outside traffic.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
import types
import typing as t
import unicodedata
import uuid

from graywsgi._closing import RequestScope
from graywsgi._query import query_param_bytes
from graywsgi._request_ids import new_request_id
from graywsgi.context import ENVIRON_KEY, DegradeLevel, GrayContext, Source, _current_context
from graywsgi.errors import ConfigurationError, problem_response
from graywsgi.extraction_breaker import Admission, BreakerState, ExtractionBreaker
from graywsgi.headers import valid_field_value
from graywsgi.trust import TrustPolicy
from graywsgi.version import VersionContext

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Extraction", "Resolver", "IDENTIFIERS", "query_param_bytes"]

logger = logging.getLogger("graywsgi.extraction")

Resolver = t.Callable[["WSGIEnvironment"], t.Optional[t.Mapping[str, str]]]

#: Context field -> WSGI environ key of the header it is read from.
IDENTIFIERS: t.Mapping[str, str] = {
    "gray_id": "HTTP_X_GRAY_ID",
    "env": "HTTP_X_ENV",
    "version": "HTTP_X_VERSION",
    "canary_id": "HTTP_X_CANARY_ID",
    "traffic_color": "HTTP_X_TRAFFIC_COLOR",
    "api_version": "HTTP_X_API_VERSION",
    "request_id": "HTTP_X_REQUEST_ID",
    "trace_parent": "HTTP_TRACEPARENT",
}

#: Context fields a resolver may set.
RESOLVABLE = frozenset({"tenant", "role", "gray_id"})

#: W3C Trace Context ``traceparent``: version (not ff), trace id (not all
#: zeros), parent id (not all zeros), flags; lowercase hex only.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


# Enum members looked up on their class cost a metaclass call each time in
# Python 3.11: the per-request path uses module-level names.
_UNTRUSTED = Source.UNTRUSTED
_BREAKER_CLOSED = BreakerState.CLOSED
#: Identifiers covered by the trust boundary (see graywsgi.trust.GRAY_HEADERS).
_GRAY_FIELDS = frozenset({"gray_id", "traffic_color", "version", "env", "canary_id"})

#: A new context's fields in order, as a list to copy and fill: extraction
#: sets the identifiers (request_id ... role) and ``sources``.
_TEMPLATE: list[t.Any] = [None] * len(GrayContext._fields)
_TEMPLATE[GrayContext._fields.index("degrade_level")] = DegradeLevel.NONE
_TEMPLATE[GrayContext._fields.index("dropped")] = ()
_SLOT = {name: index for index, name in enumerate(GrayContext._fields)}
_REQUEST_ID, _LEVEL, _DROPPED, _SOURCES_SLOT, _GRAY_ID_SLOT, _GRAY_KEY_SLOT, _API_VERSION_SLOT, _TRACE_SLOT = (
    _SLOT[name]
    for name in ("request_id", "degrade_level", "dropped", "sources", "gray_id", "gray_key", "api_version",
                 "trace_parent")
)

#: One bit per identifier, in :data:`IDENTIFIERS` order: which are present
#: (for the shared ``sources`` mappings) and which failed.
_BIT = {name: 1 << index for index, name in enumerate(IDENTIFIERS)}
_GRAY_ID_BIT, _API_VERSION_BIT, _TRACE_BIT = _BIT["gray_id"], _BIT["api_version"], _BIT["trace_parent"]
_GRAY_ID_KEY, _TRACE_KEY = IDENTIFIERS["gray_id"], IDENTIFIERS["trace_parent"]
_GENERATED_ID = 1 << len(IDENTIFIERS)  # the request id was generated
#: (environ key, slot, bit) of every identifier read as checked text;
#: ``traceparent`` has a syntax of its own and is read after them.
_TEXT_FIELDS = tuple(
    (key, _SLOT[name], _BIT[name]) for name, key in IDENTIFIERS.items() if name != "trace_parent"
)

#: Clients send the same few API versions over and over; parsing a range
#: is far dearer than a cache lookup. Invalid text raises and is not cached.
_version_context = functools.lru_cache(maxsize=256)(VersionContext)


def _text(raw: bytes) -> str | None:
    """Bytes from the wire as text: UTF-8 if they are UTF-8, else latin-1.

    ``None`` when the text would carry a control, format or line-separator
    character (Unicode categories Cc, Cf, Zl, Zp: C1 controls such as NEL,
    U+2028, bidi overrides) -- obs-text bytes are valid on the wire but such
    text must not reach logs, metrics or outgoing headers.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    for char in text:
        if not char.isascii() and unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return None
    return text


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _field_text(value: str) -> str | None:
    """A WSGI header value as text, or ``None`` if it is not a valid RFC 9110
    field value or its text is unsafe (see :func:`_text`)."""
    if not valid_field_value(value):
        return None
    if value.isascii():
        return value
    return _text(value.encode("latin-1"))


def _valid_traceparent(value: str) -> bool:
    """Whether ``value`` is a W3C ``traceparent`` in the version-00 layout
    (any version but ``ff``), lowercase hex."""
    return _TRACEPARENT.fullmatch(value) is not None


#: (verdict, presence bits) -> the read-only ``sources`` mapping; every
#: request with the same identifiers present shares one (at most 5 x 2**9).
_SOURCES: dict[tuple[Source, int], t.Mapping[str, Source]] = {}


def _sources(verdict: Source, mask: int) -> t.Mapping[str, Source]:
    found = _SOURCES.get((verdict, mask))
    if found is None:
        table = {
            name: verdict if name in _GRAY_FIELDS else _UNTRUSTED for name, bit in _BIT.items() if mask & bit
        }
        if mask & _GENERATED_ID:
            table["request_id"] = Source.GENERATED
        found = _SOURCES[(verdict, mask)] = types.MappingProxyType(table)
    return found


_FALLBACK_SOURCES: t.Mapping[str, Source] = types.MappingProxyType(
    {"request_id": Source.FALLBACK, "tenant": Source.FALLBACK, "role": Source.FALLBACK}
)


def _fallback_context(level: DegradeLevel, dropped: tuple[str, ...] = ()) -> GrayContext:
    return GrayContext(
        request_id=f"fallback-{uuid.uuid4()}",
        tenant="default",
        role="GUEST",
        degrade_level=level,
        dropped=dropped,
        sources=_FALLBACK_SOURCES,
    )


class Extraction:
    """Bind a :class:`~graywsgi.context.GrayContext` to every request.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> def hello(environ, start_response):
    ...     return Response(f"id={current.gray_id}")(environ, start_response)
    >>> Client(Extraction(hello)).get("/?gray_id=user-7", buffered=True).text
    'id=user-7'

    :param app: the WSGI application to wrap.
    :param required: identifiers (context field names from
        :data:`IDENTIFIERS`) whose absence counts as a failure.
    :param max_length: longest accepted identifier, in bytes (default 256).
    :param fallback_after: failures that turn L1 into L2 (default 2).
    :param resolvers: callables run after parsing, under the breaker.
    :param breaker: the extraction breaker; a default
        :class:`ExtractionBreaker` (3 failures, 50 ms, 60 s) if omitted.
    :param refuse_when_open: answer 503 instead of the fallback context
        while the breaker is open (default ``False``).
    :param query_fallback: the query parameter consulted when ``X-Gray-ID``
        is absent (default ``"gray_id"``; ``None`` disables it).
    :param trust: the trust boundary. With a policy, gray headers from an
        untrusted request are removed from the environ before anything
        reads them (and the query fallback is ignored for it); honoured
        identifiers are recorded as ``trusted`` or ``signed``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        required: t.Iterable[str] = (),
        max_length: int = 256,
        fallback_after: int = 2,
        resolvers: t.Sequence[Resolver] = (),
        breaker: ExtractionBreaker | None = None,
        refuse_when_open: bool = False,
        query_fallback: str | None = "gray_id",
        trust: TrustPolicy | None = None,
    ) -> None:
        self.app = app
        if trust is not None and not isinstance(trust, TrustPolicy):
            raise ConfigurationError(f"trust must be a graywsgi.trust.TrustPolicy, got {trust!r}")
        self.trust = trust
        self.required = required  # validated by the setter
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigurationError(f"max_length must be a positive int, got {max_length!r}")
        if isinstance(fallback_after, bool) or not isinstance(fallback_after, int) or fallback_after < 2:
            raise ConfigurationError(f"fallback_after must be an int >= 2, got {fallback_after!r}")
        for resolver in resolvers:
            if not callable(resolver):
                raise ConfigurationError(f"resolver {resolver!r} is not callable")
        if query_fallback is not None and not query_fallback:
            raise ConfigurationError("query_fallback must be a parameter name or None")
        self.max_length = max_length
        self.fallback_after = fallback_after
        self.resolvers = tuple(resolvers)
        self.breaker = breaker if breaker is not None else ExtractionBreaker()
        self.refuse_when_open = refuse_when_open
        self.query_fallback = query_fallback

    @property
    def required(self) -> frozenset[str]:
        """Identifiers whose absence counts as a failure (settable)."""
        return self._required

    @required.setter
    def required(self, names: t.Iterable[str]) -> None:
        required = frozenset(names)
        unknown = required - IDENTIFIERS.keys()
        if unknown:
            raise ConfigurationError(
                f"required names unknown identifiers {sorted(unknown)}; "
                f"choose from {sorted(IDENTIFIERS)}"
            )
        self._required = required
        self._required_bits = sum(_BIT[name] for name in required)  # what _parse checks

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        try:
            context = self.extract(environ)
        except Exception:
            logger.exception("graywsgi extraction failed; serving with the fallback context")
            context = _fallback_context(DegradeLevel.L2)
        if context is None:
            seconds = max(1, math.ceil(self.breaker.retry_after()))
            return problem_response(
                start_response,
                503,
                "Gray context extraction is temporarily unavailable.",
                headers=[("Retry-After", str(seconds))],
            )
        # Bound for the application call here, and by the request's scope
        # around every next() and close() of the body: visible to nothing
        # else, in whatever thread the server uses for each step.
        scope, owner = RequestScope.join(environ)
        outer = scope.gray
        environ[ENVIRON_KEY] = context
        token = _current_context.set(context)
        try:
            iterable = self.app(environ, start_response)
        except BaseException:
            _current_context.reset(token)
            if owner:
                scope.abort()
            raise
        if scope.gray is outer:  # an Extraction nested inside has set it: the innermost wins
            scope.gray = _current_context.get()  # as the layers below left it (route, ...)
        _current_context.reset(token)
        return scope.finish(iterable) if owner else scope.joined(iterable)

    def extract(self, environ: WSGIEnvironment) -> GrayContext | None:
        """Build the context for ``environ`` without binding it.

        :return: the context, or ``None`` when the request is to be refused
            (breaker open and ``refuse_when_open``).
        """
        breaker = self.breaker
        resolvers = self.resolvers
        trust = self.trust
        verdict = _UNTRUSTED
        if not resolvers and breaker._state is _BREAKER_CLOSED and not breaker._consecutive_failures:
            # No resolver to guard and no failure pending: the breaker only
            # needs to hear of a failure (a success would change nothing).
            try:
                if trust is not None:
                    verdict = trust.enforce(environ)
                slots, mask, failures = self._parse(environ, verdict)
            except BaseException:
                breaker.record(Admission.PASS, failed=True, duration=0.0)
                raise
            return self._finish(slots, mask, failures, verdict, None)
        admission = breaker.admit()
        if admission is Admission.REJECT:
            logger.debug("graywsgi extraction skipped: breaker open (degrade L3)")
            if trust is not None:
                trust.enforce(environ)  # untrusted gray headers never reach the app
            if self.refuse_when_open:
                return None
            return _fallback_context(DegradeLevel.L3)
        failed = False
        duration = 0.0
        resolved: dict[str, str] | None = None
        try:
            if trust is not None:
                verdict = trust.enforce(environ)
            slots, mask, failures = self._parse(environ, verdict)
            if resolvers:
                resolved, resolver_failures, duration = self._resolve(environ, slots)
                failures.extend(resolver_failures)
                failed = bool(resolver_failures)
        except BaseException:
            failed = True
            raise
        finally:
            breaker.record(admission, failed=failed, duration=duration)
        return self._finish(slots, mask, failures, verdict, resolved)

    def _parse(self, environ: WSGIEnvironment, verdict: Source) -> tuple[list[t.Any], int, list[str]]:
        """Read the identifiers: (context slots, presence bits, failures).

        The hot path of every request. Presence and failure are bits, so a
        request with no failure names none; a short, plain ASCII text value
        costs one pass of the first loop and no per-field helper call.
        """
        slots = _TEMPLATE.copy()
        mask = failed = 0
        max_length = self.max_length
        get = environ.get
        for key, slot, bit in _TEXT_FIELDS:
            raw = get(key)
            if raw is None:
                continue
            if raw.__class__ is not str:
                failed |= bit
                continue
            value = raw.strip(" \t")
            if not value:
                continue  # an empty value counts as absent
            if len(value) > max_length:
                failed |= bit
            elif value.isascii() and value.isprintable():
                slots[slot] = value  # the usual SP..~ value: the fast form of the check
                mask |= bit
            else:
                text = _field_text(value)
                if text is None:
                    failed |= bit
                else:
                    slots[slot] = text
                    mask |= bit
        if mask & _GRAY_ID_BIT:
            # gray_key: the bytes as sent (the WSGI string's latin-1 encoding).
            # Read again here: cheaper than singling out the gray id in the loop.
            slots[_GRAY_KEY_SLOT] = environ[_GRAY_ID_KEY].strip(" \t").encode("latin-1")
        elif not failed & _GRAY_ID_BIT and self.query_fallback is not None and (
            self.trust is None or verdict is not _UNTRUSTED
        ):
            from_query = self._query_gray_key(environ)
            if from_query is False:
                failed |= _GRAY_ID_BIT
            elif isinstance(from_query, bytes):
                text = _text(from_query)
                if text is None:
                    failed |= _GRAY_ID_BIT
                else:
                    slots[_GRAY_ID_SLOT] = text
                    slots[_GRAY_KEY_SLOT] = from_query
                    mask |= _GRAY_ID_BIT
        if mask & _API_VERSION_BIT:
            try:
                slots[_API_VERSION_SLOT] = _version_context(slots[_API_VERSION_SLOT])
            except ValueError:
                slots[_API_VERSION_SLOT] = None
                mask &= ~_API_VERSION_BIT
                failed |= _API_VERSION_BIT
        raw = get(_TRACE_KEY)
        if raw.__class__ is str:
            value = raw.strip(" \t")
            # The pattern admits only lowercase hex and dashes: it is the
            # field-value check too, and cheaper. Empty counts as absent.
            if value and len(value) <= max_length and _valid_traceparent(value):
                slots[_TRACE_SLOT] = value
                mask |= _TRACE_BIT
            elif value:
                failed |= _TRACE_BIT
        elif raw is not None:
            failed |= _TRACE_BIT
        failed |= self._required_bits & ~mask
        if not failed:
            return slots, mask, []
        return slots, mask, [name for name, bit in _BIT.items() if failed & bit]

    def _query_gray_key(self, environ: WSGIEnvironment) -> bytes | None | bool:
        """The decoded query value, ``None`` if absent, ``False`` if invalid."""
        query = environ.get("QUERY_STRING", "")
        name = self.query_fallback
        if not query or name is None or (name not in query and "%" not in query):
            return None
        key = query_param_bytes(query, name)
        if not key:
            return None
        if len(key) > self.max_length or not valid_field_value(key.strip(b" \t")):
            return False
        return key

    def _resolve(self, environ: WSGIEnvironment, slots: list[t.Any]) -> tuple[dict[str, str], list[str], float]:
        """Run the resolvers into ``slots``; return what they set, the
        failures and the slowest one's time."""
        resolved: dict[str, str] = {}
        failures: list[str] = []
        slowest = 0.0
        for resolver in self.resolvers:
            name = getattr(resolver, "__name__", type(resolver).__name__)
            started = time.perf_counter()
            try:
                result = resolver(environ)
            except Exception:
                logger.exception("graywsgi resolver %s raised; its result is dropped", name)
                failures.append(f"resolver:{name}")
                continue
            finally:
                slowest = max(slowest, time.perf_counter() - started)
            if result is None:
                continue
            problem = self._resolver_result_problem(result)
            if problem:
                logger.error("graywsgi resolver %s returned an unusable result: %s", name, problem)
                failures.append(f"resolver:{name}")
                continue
            for field_name, value in result.items():
                slots[_SLOT[field_name]] = value
                if field_name == "gray_id":
                    slots[_SLOT["gray_key"]] = value.encode("utf-8")
                resolved[field_name] = value
        return resolved, failures, slowest

    def _resolver_result_problem(self, result: object) -> str:
        if not isinstance(result, t.Mapping):
            return f"expected a mapping or None, got {type(result).__name__}"
        for field_name, value in result.items():
            if field_name not in RESOLVABLE:
                return f"it may not set {field_name!r} (allowed: {sorted(RESOLVABLE)})"
            if not isinstance(value, str) or not value:
                return f"{field_name!r} must be a non-empty str"
            raw = value.encode("utf-8")
            if len(raw) > self.max_length or not valid_field_value(raw) or _text(raw) is None:
                return f"{field_name!r} is not a valid header field value"
        return ""

    def _finish(
        self,
        slots: list[t.Any],
        mask: int,
        failures: list[str],
        verdict: Source,
        resolved: dict[str, str] | None,
    ) -> GrayContext:
        if len(failures) >= self.fallback_after:
            logger.warning(
                "graywsgi extraction: %d identifiers failed (%s); fallback context (degrade L2)",
                len(failures),
                ", ".join(failures),
                extra={"graywsgi_degrade_level": 2},
            )
            return _fallback_context(DegradeLevel.L2, tuple(failures))
        if slots[_REQUEST_ID] is None:
            slots[_REQUEST_ID] = new_request_id()
            mask |= _GENERATED_ID
        sources = _SOURCES.get((verdict, mask)) or _sources(verdict, mask)
        if resolved:
            sources = types.MappingProxyType({**sources, **dict.fromkeys(resolved, _UNTRUSTED)})
        slots[_SOURCES_SLOT] = sources
        if failures:
            slots[_LEVEL] = DegradeLevel.L1
            slots[_DROPPED] = tuple(failures)
            logger.info(
                "graywsgi extraction: dropped %s (degrade L1), request %s",
                failures[0],
                slots[_REQUEST_ID],
                extra={"graywsgi_degrade_level": 1},
            )
        # Positional, straight from the slots: the keyword constructor is
        # several times dearer and this runs for every request.
        return tuple.__new__(GrayContext, slots)
