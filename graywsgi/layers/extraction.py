"""
Extraction
==========

The first gray layer: it reads the gray identifiers of a request, builds its
:class:`~graywsgi.core.context.GrayContext`, binds it for the request and
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
then be RFC 9110 field values (see :mod:`graywsgi.httputil.headers`) no longer than
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
- **L3** -- the :class:`~graywsgi.layers.extraction_breaker.ExtractionBreaker` is
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
:class:`~graywsgi.httputil.trust.TrustPolicy`, they count only from trusted proxy
networks or with a valid gateway signature: from anyone else they are
removed from the environ before extraction (and the application) sees them,
and the ``?gray_id=`` fallback is ignored, so the split falls back to a key
the service owns. Honoured gray identifiers are recorded as
:attr:`~graywsgi.core.context.Source.TRUSTED` or
:attr:`~graywsgi.core.context.Source.SIGNED`.

Security note: without a policy, Extraction honours every identifier and
records it as :attr:`~graywsgi.core.context.Source.UNTRUSTED`: anyone who can
reach the application can send ``X-Gray-ID`` or ``X-Traffic-Color`` and
choose their route. That is for development, or behind a gateway that
strips these headers from outside traffic.
"""

from __future__ import annotations

import typing as t

from graywsgi.httputil.query import query_param_bytes
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction_breaker import ExtractionBreaker
from graywsgi.layers.identifiers import (
    BITS,
    IDENTIFIERS,
    MAX_IDENTIFIER_LENGTH,
    IdentifierReader,
    valid_traceparent,
)
from graywsgi.httputil.headers import field_text, wire_text
from graywsgi.layers.resolvers import RESOLVABLE, Resolver
from graywsgi.layers.pipeline import EXTRACTION, Pipeline
from graywsgi.httputil.trust import TrustPolicy

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

    from graywsgi.core.context import GrayContext

__all__ = ["Extraction", "Resolver", "IDENTIFIERS", "RESOLVABLE", "query_param_bytes"]

# Older names of the checks, kept for code that imports them from here.
_text = wire_text
_field_text = field_text
_valid_traceparent = valid_traceparent


class Extraction(Pipeline):
    """Bind a :class:`~graywsgi.core.context.GrayContext` to every request.

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
    :param max_length: longest accepted identifier, in bytes (default 256;
        at most :data:`~graywsgi.layers.identifiers.MAX_IDENTIFIER_LENGTH`).
    :param fallback_after: failures that turn L1 into L2 (default 2).
    :param resolvers: callables run after parsing, under the breaker.
    :param breaker: the extraction breaker (an :class:`ExtractionBreaker`);
        a default one (3 failures, 50 ms, 60 s) if omitted.
    :param refuse_when_open: answer 503 instead of the fallback context
        while the breaker is open (default ``False``).
    :param query_fallback: the query parameter consulted when ``X-Gray-ID``
        is absent (default ``"gray_id"``; ``None`` disables it).
    :param trust: the trust boundary. With a policy, gray headers from an
        untrusted request are removed from the environ before anything
        reads them (and the query fallback is ignored for it); honoured
        identifiers are recorded as ``trusted`` or ``signed``.
    :param strict_identifiers: how an ambiguous gray id is read. ``False``
        (the default) reads it as the Go gateway does: of a repeated
        ``X-Gray-ID`` (which reaches WSGI as ``a,b``) the first value; of the
        query fallback the first value that decodes, skipping pairs with a
        malformed ``%`` escape or a ``;``. ``True`` refuses such a gray id
        (dropped, degrade L1; the request goes to the default route). See
        docs/concepts.md, "Where graywsgi and the Go gateway differ".

    Every option is an attribute of the same name; setting one checks it as
    the constructor does and applies it from the next request on.
    """

    _stage = EXTRACTION

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
        strict_identifiers: bool = False,
    ) -> None:
        Pipeline.__init__(self, app)
        self._reader = IdentifierReader(
            required_bits=0,
            max_length=256,
            fallback_after=2,
            resolvers=(),
            breaker=ExtractionBreaker(),
            refuse_when_open=bool(refuse_when_open),
            query_fallback="gray_id",
            trust=None,
        )
        self._required: frozenset[str] = frozenset()
        if breaker is not None:
            self.breaker = breaker  # checked by the setter
        self.trust = trust
        self.required = required
        self.max_length = max_length
        self.fallback_after = fallback_after
        self.resolvers = resolvers  # stored as a tuple
        self.query_fallback = query_fallback
        self.strict_identifiers = strict_identifiers
        self._step = self._reader
        self._fuse()

    # -- options: checked, then handed to the reader ---------------------------

    @property
    def required(self) -> frozenset[str]:
        """Identifiers whose absence counts as a failure."""
        return self._required

    @required.setter
    def required(self, names: t.Iterable[str]) -> None:
        if isinstance(names, str) or not isinstance(names, t.Iterable):
            raise ConfigurationError(f"required must be a collection of identifier names, got {names!r}")
        required = frozenset(names)
        unknown = required - IDENTIFIERS.keys()
        if unknown:
            raise ConfigurationError(
                f"required names unknown identifiers {sorted(unknown)}; "
                f"choose from {sorted(IDENTIFIERS)}"
            )
        self._required = required
        self._reader.required_bits = sum(BITS[name] for name in required)

    @property
    def strict_identifiers(self) -> bool:
        """Refuse a repeated ``X-Gray-ID`` and a malformed query gray id,
        instead of reading them as the Go gateway does."""
        return self._reader.strict_identifiers

    @strict_identifiers.setter
    def strict_identifiers(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ConfigurationError(f"strict_identifiers must be True or False, got {value!r}")
        self._reader.strict_identifiers = value

    @property
    def max_length(self) -> int:
        """Longest accepted identifier, in bytes."""
        return self._reader.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_length must be a positive int, got {value!r}")
        if value > MAX_IDENTIFIER_LENGTH:
            raise ConfigurationError(f"max_length must be at most {MAX_IDENTIFIER_LENGTH:,} bytes, got {value:,}")
        self._reader.max_length = value

    @property
    def fallback_after(self) -> int:
        """Failures that turn L1 into L2."""
        return self._reader.fallback_after

    @fallback_after.setter
    def fallback_after(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigurationError(f"fallback_after must be an int >= 2, got {value!r}")
        self._reader.fallback_after = value

    @property
    def resolvers(self) -> tuple[Resolver, ...]:
        """The resolvers, run after parsing under the breaker."""
        return self._reader.resolvers

    @resolvers.setter
    def resolvers(self, resolvers: t.Sequence[Resolver]) -> None:
        for resolver in resolvers:
            if not callable(resolver):
                raise ConfigurationError(f"resolver {resolver!r} is not callable")
        self._reader.resolvers = tuple(resolvers)

    @property
    def breaker(self) -> ExtractionBreaker:
        """The extraction breaker."""
        return self._reader.breaker

    @breaker.setter
    def breaker(self, breaker: ExtractionBreaker) -> None:
        if not isinstance(breaker, ExtractionBreaker):
            raise ConfigurationError(f"breaker must be an ExtractionBreaker, got {breaker!r}")
        self._reader.breaker = breaker

    @property
    def refuse_when_open(self) -> bool:
        """Whether to answer 503 while the breaker is open."""
        return self._reader.refuse_when_open

    @refuse_when_open.setter
    def refuse_when_open(self, refuse: bool) -> None:
        self._reader.refuse_when_open = bool(refuse)

    @property
    def query_fallback(self) -> str | None:
        """The query parameter read when ``X-Gray-ID`` is absent (``None``: none)."""
        return self._reader.query_fallback

    @query_fallback.setter
    def query_fallback(self, name: str | None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError("query_fallback must be a parameter name or None")
        self._reader.query_fallback = name

    @property
    def trust(self) -> TrustPolicy | None:
        """The trust boundary (``None``: every identifier is honoured)."""
        return self._reader.trust

    @trust.setter
    def trust(self, trust: TrustPolicy | None) -> None:
        if trust is not None and not isinstance(trust, TrustPolicy):
            raise ConfigurationError(f"trust must be a graywsgi.trust.TrustPolicy, got {trust!r}")
        self._reader.trust = trust

    # -- per request -----------------------------------------------------------

    def extract(self, environ: WSGIEnvironment) -> GrayContext | None:
        """Build the context for ``environ`` without binding it.

        :return: the context, or ``None`` when the request is to be refused
            (breaker open and ``refuse_when_open``).
        """
        return self._reader.read(environ)
