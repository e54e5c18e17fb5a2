"""
Reading gray identifiers
========================

:class:`IdentifierReader` is :class:`~graywsgi.layers.extraction.Extraction`'s
step in the request path: it reads the gray identifiers of one request from
its WSGI environ, checks them, and builds the request's
:class:`~graywsgi.core.context.GrayContext`. What it reads, how each value is
checked and how extraction degrades are documented with
:mod:`graywsgi.layers.extraction`; this module holds the code that runs per
request, compiled by Cython when the fast path is built
(:mod:`graywsgi.speedups`).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import types
import typing as t
import uuid

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

from graywsgi.httputil.query import go_query_get, strict_query_get
from graywsgi.httputil.request_ids import new_request_id
from graywsgi.core.context import DegradeLevel, GrayContext, Source
from graywsgi.errors import problem_response
from graywsgi.layers.extraction_breaker import Admission, BreakerState
from graywsgi.layers.resolvers import RESOLVABLE, Resolver, run_resolvers
from graywsgi.httputil.headers import field_text, valid_field_value, wire_text
from graywsgi.core.version import VersionContext

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from graywsgi.layers.extraction_breaker import ExtractionBreaker
    from graywsgi.httputil.trust import TrustPolicy

__all__ = [
    "IdentifierReader", "IDENTIFIERS", "MAX_IDENTIFIER_LENGTH", "RESOLVABLE", "Resolver", "fallback_context",
    "valid_traceparent",
]

logger = logging.getLogger("graywsgi.extraction")

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


#: The largest ``max_length`` Extraction accepts, in bytes (servers cap a
#: whole header line well below it: gunicorn at 8,190 bytes).
MAX_IDENTIFIER_LENGTH = 65_536

#: W3C Trace Context ``traceparent``: version (not ff), trace id (not all
#: zeros), parent id (not all zeros), flags; lowercase hex only.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

# Enum members looked up on their class cost a metaclass call each time in
# Python 3.11: the per-request path uses module-level names.
_UNTRUSTED = Source.UNTRUSTED
_BREAKER_CLOSED = BreakerState.CLOSED
_REJECT = Admission.REJECT
_PASS = Admission.PASS
_L1 = DegradeLevel.L1
#: Identifiers covered by the trust boundary (see graywsgi.httputil.trust.GRAY_HEADERS).
_GRAY_FIELDS = frozenset({"gray_id", "traffic_color", "version", "env", "canary_id"})

#: A new context's fields in order, as a list to copy and fill: the reader
#: sets the identifiers (request_id ... role) and ``sources``.
_TEMPLATE: list[t.Any] = [None] * len(GrayContext._fields)
_TEMPLATE[GrayContext._fields.index("degrade_level")] = DegradeLevel.NONE
_TEMPLATE[GrayContext._fields.index("dropped")] = ()
_SLOT = {name: index for index, name in enumerate(GrayContext._fields)}
_REQUEST_ID = _SLOT["request_id"]
_LEVEL = _SLOT["degrade_level"]
_DROPPED = _SLOT["dropped"]
_SOURCES_SLOT = _SLOT["sources"]
_GRAY_ID_SLOT = _SLOT["gray_id"]
_GRAY_KEY_SLOT = _SLOT["gray_key"]
_API_VERSION_SLOT = _SLOT["api_version"]
_TRACE_SLOT = _SLOT["trace_parent"]

#: One bit per identifier, in :data:`IDENTIFIERS` order: which are present
#: (for the shared ``sources`` mappings) and which failed.
BITS: t.Mapping[str, int] = {name: 1 << index for index, name in enumerate(IDENTIFIERS)}
_GRAY_ID_BIT = BITS["gray_id"]
_API_VERSION_BIT = BITS["api_version"]
_TRACE_BIT = BITS["trace_parent"]
_TRACE_KEY = IDENTIFIERS["trace_parent"]
_GENERATED_ID = 1 << len(IDENTIFIERS)  # the request id was generated
#: The environ key and the slot of every identifier read as checked text,
#: in :data:`IDENTIFIERS` order (the bit of the n-th is ``1 << n``);
#: ``traceparent`` has a syntax of its own, comes last and is read after them.
_TEXT_KEYS = tuple(key for name, key in IDENTIFIERS.items() if name != "trace_parent")
_TEXT_SLOTS = tuple(_SLOT[name] for name in IDENTIFIERS if name != "trace_parent")
if list(IDENTIFIERS)[-1] != "trace_parent":  # pragma: no cover - a check on this module's own tables
    raise RuntimeError("trace_parent must be the last identifier: the text fields' bits are 1 << their index")

#: Clients send the same few API versions over and over; parsing a range
#: is far dearer than a cache lookup. Invalid text raises and is not cached.
_version_context = functools.lru_cache(maxsize=256)(VersionContext)

def valid_traceparent(value: str) -> bool:
    """Whether ``value`` is a W3C ``traceparent`` in the version-00 layout
    (any version but ``ff``), lowercase hex: what :data:`_TRACEPARENT`
    matches (compiled, checked character by character)."""
    if cython.compiled:
        return _capi.ascii_traceparent(value)
    return _TRACEPARENT.fullmatch(value) is not None


def trimmed(raw: str) -> str:
    """``raw.strip(" \\t")``: a header value without its surrounding spaces and tabs."""
    if cython.compiled and not _capi.needs_trim(raw):
        return raw  # most values have nothing to strip: no new string for them
    return raw.strip(" \t")


def plain_ascii(value: str) -> bool:
    """Whether every character of ``value`` is SP .. ``~`` (the usual header
    value): ``value.isascii() and value.isprintable()``."""
    if cython.compiled:
        return _capi.ascii_printable(value)
    return value.isascii() and value.isprintable()


#: (verdict, presence bits) -> the read-only ``sources`` mapping; every
#: request with the same identifiers present shares one (at most 5 x 2**9).
_SOURCES: dict[tuple[Source, int], t.Mapping[str, Source]] = {}


def _sources(verdict: Source, mask: int) -> t.Mapping[str, Source]:
    found = _SOURCES.get((verdict, mask))
    if found is None:
        table = {
            name: verdict if name in _GRAY_FIELDS else _UNTRUSTED for name, bit in BITS.items() if mask & bit
        }
        if mask & _GENERATED_ID:
            table["request_id"] = Source.GENERATED
        found = _SOURCES[(verdict, mask)] = types.MappingProxyType(table)
    return found


#: Untrusted requests (no trust policy): ``sources`` at the index of the
#: presence bits (with the generated-id bit: below ``2 * _GENERATED_ID``),
#: ``None`` until first needed. A list: indexing it costs less than hashing
#: the bits for a dict.
_UNTRUSTED_SOURCES: list[t.Mapping[str, Source] | None] = [None] * (2 * _GENERATED_ID)

_FALLBACK_SOURCES: t.Mapping[str, Source] = types.MappingProxyType(
    {"request_id": Source.FALLBACK, "tenant": Source.FALLBACK, "role": Source.FALLBACK}
)


def fallback_context(level: DegradeLevel, dropped: tuple[str, ...] = ()) -> GrayContext:
    """The fallback context: request id ``fallback-<uuid4>``, tenant
    ``default``, role ``GUEST``, no gray identifiers (so: stable)."""
    return GrayContext(
        request_id=f"fallback-{uuid.uuid4()}",
        tenant="default",
        role="GUEST",
        degrade_level=level,
        dropped=dropped,
        sources=_FALLBACK_SOURCES,
    )


class IdentifierReader:
    """Reads one request's gray identifiers into its context.

    The options are those of :class:`~graywsgi.layers.extraction.Extraction`,
    already checked by it; ``required_bits`` is :data:`BITS` of the
    required identifiers, added up.
    """

    def __init__(
        self,
        *,
        required_bits: int,
        max_length: int,
        fallback_after: int,
        resolvers: tuple[Resolver, ...],
        breaker: ExtractionBreaker,
        refuse_when_open: bool,
        query_fallback: str | None,
        trust: TrustPolicy | None,
        strict_identifiers: bool = False,
    ) -> None:
        self.required_bits = required_bits
        self.strict_identifiers = strict_identifiers
        self.max_length = max_length
        self.fallback_after = fallback_after
        self.resolvers = resolvers
        self.breaker = breaker
        self.refuse_when_open = refuse_when_open
        self.query_fallback = query_fallback
        self.trust = trust

    def context(self, environ: WSGIEnvironment) -> GrayContext | None:
        """:meth:`read`, failing open: an unexpected error is logged and the
        request gets the fallback context (degrade L2)."""
        try:
            return self.read(environ)
        except Exception:
            logger.exception("graywsgi extraction failed; serving with the fallback context")
            return fallback_context(DegradeLevel.L2)

    def refusal(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        """The answer while the breaker is open and ``refuse_when_open`` is set."""
        seconds = max(1, math.ceil(self.breaker.retry_after()))
        return problem_response(
            start_response,
            503,
            "Gray context extraction is temporarily unavailable.",
            headers=[("Retry-After", str(seconds))],
        )

    def read(self, environ: WSGIEnvironment) -> GrayContext | None:
        """Build the context for ``environ`` without binding it.

        :return: the context, or ``None`` when the request is to be refused
            (breaker open and ``refuse_when_open``).
        """
        breaker = self.breaker
        trust = self.trust
        verdict = _UNTRUSTED
        if not self.resolvers and breaker._state is _BREAKER_CLOSED and not breaker._consecutive_failures:
            # No resolver to guard and no failure pending: the breaker only
            # needs to hear of a failure (a success would change nothing).
            try:
                if trust is not None:
                    verdict = trust.enforce(environ)
                slots = _TEMPLATE.copy()
                failed = self.parse(environ, verdict, slots)
            except BaseException:
                breaker.record(_PASS, failed=True, duration=0.0)
                raise
            return self.finish(slots, failed, None, verdict, None)
        admission = breaker.admit()
        if admission is _REJECT:
            logger.debug("graywsgi extraction skipped: breaker open (degrade L3)")
            if trust is not None:
                trust.enforce(environ)  # untrusted gray headers never reach the app
            if self.refuse_when_open:
                return None
            return fallback_context(DegradeLevel.L3)
        failed_call = False
        duration = 0.0
        resolved: dict[str, str] | None = None
        resolver_failures: list[str] | None = None
        try:
            if trust is not None:
                verdict = trust.enforce(environ)
            slots = _TEMPLATE.copy()
            failed = self.parse(environ, verdict, slots)
            if self.resolvers:
                resolved, resolver_failures, duration = run_resolvers(self.resolvers, environ, slots, self.max_length)
                failed_call = bool(resolver_failures)
        except BaseException:
            failed_call = True
            raise
        finally:
            breaker.record(admission, failed=failed_call, duration=duration)
        return self.finish(slots, failed, resolver_failures, verdict, resolved)

    def parse(self, environ: WSGIEnvironment, verdict: Source, slots: list[t.Any]) -> int:
        """Read the identifiers into ``slots`` (a copy of the template).

        The hot path of every request. Presence and failure are bits: the
        presence bits go into ``slots[sources]`` (an int until
        :meth:`finish` replaces it), the failure bits are returned; a short,
        plain ASCII text value costs one pass of the first loop and no
        per-field helper call.
        """
        mask = failed = 0
        max_length = self.max_length
        gray_value = ""  # the gray id's value as sent, once it is accepted
        for index in range(len(_TEXT_KEYS)):
            raw = environ.get(_TEXT_KEYS[index])
            if raw is None:
                continue
            bit = 1 << index
            if type(raw) is not str:
                failed |= bit
                continue
            slot = _TEXT_SLOTS[index]
            # As plain Python, trimmed() and plain_ascii() inline: a call costs more than the check.
            if cython.compiled:
                value = trimmed(raw)
                plain = _capi.ascii_printable(value)
            else:
                value = raw.strip(" \t")
                plain = value.isascii() and value.isprintable()
            if not value:
                continue  # an empty value counts as absent
            if len(value) > max_length:
                failed |= bit
            elif plain:  # the usual SP..~ value: the fast form of the check
                if cython.compiled:
                    _capi.put(slots, slot, value)  # slots[slot] = value; slot is in range
                else:
                    slots[slot] = value
                mask |= bit
            else:
                text = field_text(value)
                if text is None:
                    failed |= bit
                    continue
                slots[slot] = text
                mask |= bit
            if bit == _GRAY_ID_BIT:
                gray_value = value
        if mask & _GRAY_ID_BIT:
            # gray_key: the bytes as sent (the WSGI string's latin-1 encoding).
            value = gray_value
            if "," in value:  # sent more than once: WSGI servers join the values with ","
                failed, mask = self.repeated_gray_id(value, slots, failed, mask)
            else:
                slots[_GRAY_KEY_SLOT] = value.encode("latin-1")
        if not mask & _GRAY_ID_BIT and not failed & _GRAY_ID_BIT and self.query_fallback is not None and (
            self.trust is None or verdict is not _UNTRUSTED
        ):
            from_query = self.query_gray_key(environ)
            if from_query is False:
                failed |= _GRAY_ID_BIT
            elif from_query is not None:
                text = wire_text(from_query)  # type: ignore[arg-type]
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
        raw = environ.get(_TRACE_KEY)
        if type(raw) is str:
            value = trimmed(raw) if cython.compiled else raw.strip(" \t")
            # The pattern admits only lowercase hex and dashes: it is the
            # field-value check too, and cheaper. Empty counts as absent.
            if value and len(value) <= max_length and (
                _capi.ascii_traceparent(value) if cython.compiled else _TRACEPARENT.fullmatch(value) is not None
            ):
                slots[_TRACE_SLOT] = value
                mask |= _TRACE_BIT
            elif value:
                failed |= _TRACE_BIT
        elif raw is not None:
            failed |= _TRACE_BIT
        slots[_SOURCES_SLOT] = mask
        return failed | (self.required_bits & ~mask)

    def repeated_gray_id(self, value: str, slots: list[t.Any], failed: int, mask: int) -> tuple[int, int]:
        """``X-Gray-ID`` arrived as ``value``, holding a comma: the header was
        sent more than once (or one value holds a comma; WSGI cannot tell).
        The Go gateway's ``r.Header.Get`` takes the first value, and so does
        graywsgi by default; an empty first value counts as absent (the query
        fallback is read). With ``strict_identifiers`` the gray id is refused.
        :return: the new ``(failed, mask)`` bits."""
        if self.strict_identifiers:
            slots[_GRAY_ID_SLOT] = None
            return failed | _GRAY_ID_BIT, mask & ~_GRAY_ID_BIT
        first = value.split(",", 1)[0].strip(" \t")
        text = field_text(first) if first else None
        if text is None:  # empty counts as absent, as it does for a value sent once
            slots[_GRAY_ID_SLOT] = None
            return failed | (_GRAY_ID_BIT if first else 0), mask & ~_GRAY_ID_BIT
        slots[_GRAY_ID_SLOT] = text
        slots[_GRAY_KEY_SLOT] = first.encode("latin-1")
        return failed, mask

    def query_gray_key(self, environ: WSGIEnvironment) -> bytes | None | bool:
        """The decoded query value, ``None`` if absent, ``False`` if invalid.

        By default read as the Go gateway's ``url.Query().Get`` reads it: the
        first value that decodes, pairs holding ``;`` or a malformed escape
        skipped. With ``strict_identifiers``, the first pair of that name
        decides, and a malformed escape or a ``;`` in it refuses the gray id.
        """
        query = environ.get("QUERY_STRING", "")
        name = self.query_fallback
        if not query or name is None or (name not in query and "%" not in query):
            return None
        key = strict_query_get(query, name) if self.strict_identifiers else go_query_get(query, name)
        if key is False:
            return False
        if not key:
            return None
        if len(key) > self.max_length or not valid_field_value(key.strip(b" \t")):
            return False
        return key

    def finish(
        self,
        slots: list[t.Any],
        failed: int,
        resolver_failures: list[str] | None,
        verdict: Source,
        resolved: dict[str, str] | None,
    ) -> GrayContext:
        """The context from what :meth:`parse` (the failure bits ``failed``)
        and the resolvers found."""
        failures: list[str] | None = None  # none failed: the usual case, no list
        if failed or resolver_failures:
            failures = [name for name, bit in BITS.items() if failed & bit]
            if resolver_failures:
                failures += resolver_failures
            if len(failures) >= self.fallback_after:
                logger.warning(
                    "graywsgi extraction: %d identifiers failed (%s); fallback context (degrade L2)",
                    len(failures),
                    ", ".join(failures),
                    extra={"graywsgi_degrade_level": 2},
                )
                return fallback_context(DegradeLevel.L2, tuple(failures))
        mask = slots[_SOURCES_SLOT]
        if slots[_REQUEST_ID] is None:
            slots[_REQUEST_ID] = new_request_id()
            mask |= _GENERATED_ID
        if verdict is _UNTRUSTED:
            sources = _UNTRUSTED_SOURCES[mask]
            if sources is None:
                sources = _UNTRUSTED_SOURCES[mask] = _sources(verdict, mask)
        else:
            sources = _sources(verdict, mask)
        if resolved:
            sources = types.MappingProxyType({**sources, **dict.fromkeys(resolved, _UNTRUSTED)})
        slots[_SOURCES_SLOT] = sources
        if failures:
            slots[_LEVEL] = _L1
            slots[_DROPPED] = tuple(failures)
            logger.info(
                "graywsgi extraction: dropped %s (degrade L1), request %s",
                failures[0],
                slots[_REQUEST_ID],
                extra={"graywsgi_degrade_level": 1},
            )
        # Positional, straight from the slots: the keyword constructor is
        # several times dearer and this runs for every request.
        if cython.compiled:
            return _capi.record_from(GrayContext, slots)
        return tuple.__new__(GrayContext, slots)

