"""
Deciding a request's route
==========================

The per-request half of :mod:`graywsgi.rules.routing`: :class:`RequestFacts` (what
rules can match on), :class:`CompiledRule` (one checked rule, ready to
match) and :class:`Decider`, which picks the route of one request from a
rule set that :class:`~graywsgi.rules.routing.CompiledRules` has checked and
indexed. The decision order is documented with :mod:`graywsgi.rules.routing`.
This module is compiled by Cython when the fast path is built
(:mod:`graywsgi.speedups`).
"""

from __future__ import annotations

import random
import typing as t
from http.cookies import SimpleCookie

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

from graywsgi.httputil.query import parse_query
from graywsgi.core.context import GrayContext
from graywsgi.core.hashing import bucket_of
from graywsgi.core.version import Version, VersionRange

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)

    from graywsgi.rules.model import Backend, KeySpec, Rule

__all__ = ["CompiledRule", "Decider", "Decision", "RequestFacts", "request_facts"]

_TRAFFIC_COLOR = GrayContext._fields.index("traffic_color")
_GRAY_KEY = GrayContext._fields.index("gray_key")


class Decision(t.NamedTuple):
    """What the rules decided for one request."""

    route: str  #: the cluster name
    group: str | None  #: the A/B group
    rule: str | None  #: the rule that matched, if any
    reason: str  #: ``color``, ``version``, ``weight``, ``default`` or ``no_match``


class RequestFacts:
    """Lazy, per-request view of what rules can match on.

    Implements :class:`graywsgi.rules.expression.facts.Facts`. Query and cookies are
    parsed at most once, and only if a rule asks.
    """

    #: The request's environ and gray context.
    environ: WSGIEnvironment
    context: GrayContext | None
    #: The request's host (``Host`` header, else ``SERVER_NAME``), lowercase.
    host: str
    #: The request path (``PATH_INFO``; ``/`` when empty).
    path: str
    _query: dict[str, bytes] | None
    _cookies: dict[str, str] | None

    def __init__(self, environ: WSGIEnvironment, context: GrayContext | None) -> None:
        self.environ = environ
        self.context = context
        get = environ.get
        #: the request's host (``Host`` header, else ``SERVER_NAME``), lowercase
        self.host: str = str(get("HTTP_HOST") or get("SERVER_NAME", "")).lower()
        #: the request path (``PATH_INFO``; ``/`` when empty)
        self.path: str = str(get("PATH_INFO", "") or "/")
        self._query: dict[str, bytes] | None = None
        self._cookies: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self.environ.get(key)
        return value.strip(" \t") if isinstance(value, str) else None

    def query_bytes(self, name: str) -> bytes | None:
        if self._query is None:
            self._query = parse_query(self.environ.get("QUERY_STRING", ""))
        return self._query.get(name)

    def query(self, name: str) -> str | None:
        raw = self.query_bytes(name)
        return None if raw is None else raw.decode("utf-8", "replace")

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            self._cookies = _parse_cookies(self.environ.get("HTTP_COOKIE", ""))
        return self._cookies.get(name)

    def attribute(self, name: str) -> str | None:
        if name == "host":
            return self.host
        if name == "path":
            return self.path
        if name == "method":
            return str(self.environ.get("REQUEST_METHOD", "GET"))
        if name == "scheme":
            return str(self.environ.get("wsgi.url_scheme", "http"))
        if name == "remote_addr":
            value = self.environ.get("REMOTE_ADDR")
            return value if isinstance(value, str) else None
        context = self.context
        if context is None:
            return None
        if name == "api_version":
            return context.api_version.raw if context.api_version is not None else None
        value = getattr(context, name, None)
        return value if isinstance(value, str) else None


if not cython.compiled:  # plain Python: class attributes stand in for the C fields' first values
    RequestFacts._query = RequestFacts._cookies = None


def request_facts(environ: WSGIEnvironment, context: GrayContext | None) -> RequestFacts:
    """``RequestFacts(environ, context)``, without the call to ``__init__``."""
    facts = RequestFacts.__new__(RequestFacts)  # _query and _cookies: None
    facts.environ = environ
    facts.context = context
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
    facts.host = _capi.lowered(host) if cython.compiled else host.lower()  # the same text
    facts.path = str(environ.get("PATH_INFO", "") or "/")
    return facts


def _parse_cookies(header: str) -> dict[str, str]:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:  # a malformed Cookie header matches nothing
        return {}
    return {name: morsel.value for name, morsel in cookie.items()}


class CompiledRule:
    """One rule, checked and ready to match.

    :param rule: the rule as written.
    :param checks: conditions beyond host and path: ``check(facts) -> bool``.
    :param factor: the product of the rule's factors.
    :param versions: ``(source, exact, range, decision)`` per version route.
    :param backends: the split's entries other than the default cluster.
    :param salt: prepended to the hash key (``salt:``), or ``b""``.
    :param percent: mode ``percent`` (a random draw) rather than ``hash``.
    :param weighted: the decision for each backend's buckets.
    :param fallthrough: the decision when the rule matched but no backend took
        the request.
    """

    __slots__ = ("rule", "name", "checks", "factor", "versions", "backends", "weights", "salt", "percent", "weighted",
                 "fallthrough")

    def __init__(
        self,
        rule: Rule,
        checks: tuple[t.Callable[[RequestFacts], bool], ...],
        factor: float,
        versions: tuple[tuple[str, str | None, VersionRange | None, Decision], ...],
        backends: tuple[Backend, ...],
        salt: bytes,
        percent: bool,
        weighted: tuple[Decision, ...],
        fallthrough: Decision,
    ) -> None:
        self.rule = rule
        self.name = rule.name
        self.checks = checks
        self.factor = factor
        self.versions = versions
        self.backends = backends
        self.weights = tuple(float(backend.weight) for backend in backends)  # read per request
        self.salt = salt
        self.percent = percent
        self.weighted = weighted
        self.fallthrough = fallthrough

    def matches(self, facts: RequestFacts) -> bool:
        """Whether every check holds for ``facts`` (host and path already fit)."""
        for check in self.checks:
            if not check(facts):
                return False
        return True


class Decider:
    """Picks the route of a request from a checked, indexed rule set.

    Built by :class:`~graywsgi.rules.routing.CompiledRules`, which passes its
    tables; see there for what each decision means.
    """

    def __init__(
        self,
        *,
        rules: list[CompiledRule],
        index_entry: t.Callable[[RequestFacts], tuple[tuple[int, ...], tuple[t.Any, ...]]],
        with_values: t.Callable[[tuple[int, ...], tuple[t.Any, ...], RequestFacts], list[int]],
        recent: dict[tuple[str, str], tuple[tuple[int, ...], tuple[t.Any, ...]]],
        recent_limit: int,
        recent_key_chars: int,
        recent_candidates: int,
        color_decisions: dict[str, Decision],
        no_match: Decision | None,
        key: KeySpec,
        fallback_key: KeySpec | None,
    ) -> None:
        self.rules = rules
        self.index_entry = index_entry
        self.with_values = with_values
        self.recent = recent
        self.recent_limit = recent_limit
        self.recent_key_chars = recent_key_chars
        self.recent_candidates = recent_candidates
        self.color_decisions = color_decisions
        self.no_match = no_match
        self.key = key
        self.key_is_gray_id = key.source == "gray_id"
        self.fallback_key = fallback_key

    def match(self, facts: RequestFacts) -> CompiledRule | None:
        """The first rule whose conditions all hold, or ``None``."""
        where = (facts.host, facts.path)
        entry = self.recent.get(where)
        if entry is None:
            entry = self.index_entry(facts)
            # Remembered only when small: the memory stays bounded whatever
            # hosts, paths and rule sets come (graywsgi.rules.routing, "Memory").
            if (len(entry[0]) <= self.recent_candidates
                    and len(where[0]) + len(where[1]) <= self.recent_key_chars):
                if len(self.recent) >= self.recent_limit:
                    self.recent.clear()  # bounded; simple beats clever here
                self.recent[where] = entry
        plain, keyed = entry
        candidates = self.with_values(plain, keyed, facts) if keyed else plain
        rules = self.rules
        for index in candidates:
            compiled = rules[index]
            if not compiled.checks or compiled.matches(facts):
                return compiled
        return None

    def decide(
        self,
        facts: RequestFacts,
        canary_weight: float | None,
        plan_weight: tuple[str, str, float] | None,
        rng: t.Callable[[], float],
    ) -> Decision | None:
        """Decide the route; ``None`` means answer 404 (see
        :meth:`graywsgi.rules.routing.CompiledRules.decide`)."""
        context = facts.context
        if context is not None and self.color_decisions:
            if cython.compiled and type(context) is GrayContext:  # a field without the descriptor call
                color = _capi.item(context, _TRAFFIC_COLOR)
            else:
                color = context.traffic_color
            if color is not None and color.isascii():
                by_color = self.color_decisions.get(color.lower())
                if by_color is not None:
                    return by_color
        compiled = self.match(facts)
        if compiled is None:
            return self.no_match
        if compiled.versions and context is not None:
            for source, exact, version_range, by_version in compiled.versions:
                if version_matches(context, source, exact, version_range):
                    return by_version
        backends = compiled.backends
        if backends:
            point = self.point(compiled, facts, rng)
            if point >= 0.0:
                edge = 0.0
                name = compiled.name
                for i in range(len(backends)):
                    weight = compiled.weights[i]
                    if plan_weight is not None and plan_weight[0] == name and plan_weight[1] == backends[i].cluster:
                        weight = plan_weight[2]
                    if i == 0 and canary_weight is not None:
                        weight = canary_weight * 100
                    edge += weight * compiled.factor
                    if point < edge:
                        return compiled.weighted[i]
        return compiled.fallthrough

    def point(self, compiled: CompiledRule, facts: RequestFacts, rng: t.Callable[[], float]) -> float:
        """Where the request falls in [0, 100): its hash bucket or a random
        draw; -1.0 when it has no key (it is not split)."""
        if compiled.percent:
            return rng() * 100
        if self.key_is_gray_id:  # the usual key, without the general lookup
            context = facts.context
            if cython.compiled and type(context) is GrayContext:  # a field without the descriptor call
                key = _capi.item(context, _GRAY_KEY)
            else:
                key = context.gray_key if context is not None else None
        else:
            key = key_of(self.key, facts)
        if not key and self.fallback_key is not None:
            key = key_of(self.fallback_key, facts)
        if not key:
            return -1.0
        return float(bucket_of(compiled.salt + key if compiled.salt else key))


def key_of(spec: KeySpec, facts: RequestFacts) -> bytes | None:
    """The split key ``spec`` names, read from ``facts``."""
    if spec.source == "gray_id":
        return facts.context.gray_key if facts.context is not None else None
    name = t.cast(str, spec.name)  # checked when compiled
    if spec.source == "header":
        value = facts.header(name)
        return value.encode("latin-1", "replace") if value else None
    if spec.source == "cookie":
        value = facts.cookie(name)
        return value.encode("utf-8") if value else None
    return facts.query_bytes(name) or None


def version_matches(
    context: GrayContext, source: str, exact: str | None, version_range: VersionRange | None
) -> bool:
    """Whether a rule's version route takes the request."""
    if source == "version":
        text = context.version
        version: Version | None = None
        if text is None:
            return False
        if exact is not None:
            return text == exact
        try:
            version = Version.parse(text)
        except ValueError:
            return False
    else:
        if context.api_version is None:
            return False
        if exact is not None:
            return context.api_version.raw == exact
        version = context.api_version.version
        if version is None:
            return False
    return version_range is not None and version_range.contains(version)


_random = random.random
