"""
Compiled rules
==============

:class:`CompiledRules` checks a :class:`~graywsgi.rules.model.RuleSet` once and
turns it into lookup structures; :meth:`CompiledRules.decide` then picks the
route of one request.

Decision order
--------------

1. **Explicit colour** -- ``X-Traffic-Color`` names a cluster through the
   rule set's ``colors``.
2. **Rule** -- the first rule (in declared order) whose conditions all hold.
   No rule: the default cluster, or ``404`` when ``no_match`` says so.
3. **Version match** -- the rule's ``versions``, in order: an exact
   ``X-Version`` value, or a node-semver range containing it.
4. **Weighted clusters** -- the rule's ``split``. Each entry's weight is
   multiplied by the rule's factors (host 0.9 x path 1.0 x canary 20 % =
   18 %). Entries own contiguous runs of the 100 buckets in declared order;
   what they leave belongs to the default cluster. Hash mode hashes the key
   with 32-bit FNV-1a (``fnv1a_32(key) % 100``, the Go gateway's rule) -- a
   salt is prepended as ``salt + ":"``; percent mode draws at random.
   Because a user's bucket never changes and a cluster's run only grows
   when its weight rises, raising a canary weight never moves a canary user
   back to stable. Hash mode has the Go gateway's 1 % granularity.
5. **Default** -- everything else, including a request without any key.

The index that keeps the matching cost flat, and its bounded memory of
recent answers, are in :mod:`graywsgi.rules.routing_index`.
"""

from __future__ import annotations

import random
import re
import typing as t

from graywsgi.core.context import GrayContext
from graywsgi.rules.decision import CompiledRule, Decider, Decision, RequestFacts
from graywsgi.errors import ConfigurationError
from graywsgi.rules.expression import Expression, ExpressionError
from graywsgi.rules.model import DEFAULT_COLORS, DIMENSIONS, KeySpec, Rule, RuleSet, ValueCondition
from graywsgi.rules.routing_index import (
    RECENT_CANDIDATES,
    RECENT_KEY_CHARS,
    RECENT_PATHS,
    _add,
    _HostBucket,
    _Keyed,
    _segments,
    _value_key,
    with_values,
)
from graywsgi.core.version import VersionRange

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from graywsgi.rules.plan import Plan

__all__ = ["CompiledRules", "Decision", "RequestFacts", "RuleError", "MAX_REGEX_PATH_RULES"]

MAX_REGEX_PATH_RULES = 256
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?")


class RuleError(ConfigurationError):
    """A rule set that cannot work.

    :param location: where in the rule set, as a JSON path
        (``("rules", 2, "split", 0, "cluster")``).
    :param reason: what is wrong.
    """

    def __init__(self, location: t.Sequence[str | int], reason: str) -> None:
        self.location = tuple(location)
        self.reason = reason
        super().__init__(f"{json_path(self.location)}: {reason}")


def json_path(location: t.Sequence[str | int]) -> str:
    """Render a location as a JSON path: ``$.rules[2].split[0]``."""
    out = "$"
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# --- compiled conditions -----------------------------------------------------

_Check = t.Callable[[RequestFacts], bool]


def _value_check(
    condition: ValueCondition, lookup: t.Callable[[RequestFacts, str], str | None], where: tuple[str | int, ...]
) -> _Check:
    name = condition.name
    forms = [f for f in ("exact", "prefix", "regex", "present") if getattr(condition, f) is not None]
    if len(forms) != 1:
        raise RuleError(where, f"give exactly one of exact, prefix, regex, present (got {forms or 'none'})")
    if condition.exact is not None:
        exact = condition.exact
        return lambda facts: lookup(facts, name) == exact
    if condition.prefix is not None:
        prefix = condition.prefix

        def has_prefix(facts: RequestFacts) -> bool:
            value = lookup(facts, name)
            return value is not None and value.startswith(prefix)

        return has_prefix
    if condition.regex is not None:
        pattern = _compile_regex(condition.regex, (*where, "regex"))

        def matches(facts: RequestFacts) -> bool:
            value = lookup(facts, name)
            return value is not None and pattern.fullmatch(value) is not None

        return matches
    wanted = bool(condition.present)
    return lambda facts: (lookup(facts, name) is not None) is wanted


def _compile_regex(source: str, where: tuple[str | int, ...]) -> re.Pattern[str]:
    if len(source) > 512:
        raise RuleError(where, "regular expression longer than 512 characters")
    try:
        return re.compile(source)
    except re.error as exc:
        raise RuleError(where, f"invalid regular expression {source!r}: {exc}") from None


def _header(facts: RequestFacts, name: str) -> str | None:
    return facts.header(name)


def _query(facts: RequestFacts, name: str) -> str | None:
    return facts.query(name)


def _cookie(facts: RequestFacts, name: str) -> str | None:
    return facts.cookie(name)


class CompiledRules:
    """A checked rule set, ready to decide requests. Immutable; share freely.

    >>> from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
    >>> rules = CompiledRules(RuleSet(
    ...     clusters={"stable": Cluster(), "canary": Cluster()},
    ...     rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    ... ))
    >>> rules.decide_for(gray_id="user-1").route
    'canary'

    :param ruleset: the rule set.
    :raises RuleError: naming the location (a JSON path) and the problem.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.version_id = ruleset.version_id
        #: The default cluster and the rollout plan, as in the rule set (read per request).
        self.default_cluster = ruleset.default_cluster
        self.plan = ruleset.plan
        clusters = ruleset.clusters
        if not clusters:
            raise RuleError(("clusters",), "at least one cluster is required")
        self._check_cluster(ruleset.default_cluster, ("default_cluster",))
        for name, spec in clusters.items():
            if spec.upstream is not None:
                from graywsgi.httputil.proxy import UpstreamProxy  # checks the URL; opens nothing

                try:
                    UpstreamProxy(spec.upstream)
                except ConfigurationError as exc:
                    raise RuleError(("clusters", name, "upstream"), str(exc)) from None
        if ruleset.no_match not in ("default", "404"):
            raise RuleError(("no_match",), f"must be 'default' or '404', got {ruleset.no_match!r}")
        self._check_key(ruleset.key, ("key",))
        if ruleset.fallback_key is not None:
            self._check_key(ruleset.fallback_key, ("fallback_key",))
        self.colors: dict[str, str] = {}
        for color, cluster in ruleset.colors.items():
            if cluster not in clusters:
                if ruleset.colors is not DEFAULT_COLORS:
                    raise RuleError(("colors", color), f"names unknown cluster {cluster!r}")
                continue
            if not color.isascii():
                raise RuleError(("colors", color), "colours must be ASCII")
            self.colors[color.lower()] = cluster
        self.default_group = clusters[ruleset.default_cluster].group
        # Decisions that do not depend on the request, built once.
        self._color_decisions = {
            color: Decision(cluster, self._group(cluster, None), None, "color") for color, cluster in self.colors.items()
        }
        self._no_match = Decision(ruleset.default_cluster, self.default_group, None, "no_match")
        self.rules: list[CompiledRule] = []
        self._exact_hosts: dict[str, _HostBucket] = {}
        self._wildcard_hosts: dict[str, _HostBucket] = {}
        self._any_host = _HostBucket()
        names: set[str] = set()
        regex_rules = 0
        for index, rule in enumerate(ruleset.rules):
            where: tuple[str | int, ...] = ("rules", index)
            if rule.name in names:
                raise RuleError((*where, "name"), f"duplicate rule name {rule.name!r}")
            names.add(rule.name)
            self.rules.append(self._compile_rule(rule, where))
            if rule.path is not None and rule.path.regex is not None:
                regex_rules += 1
                if regex_rules > MAX_REGEX_PATH_RULES:
                    raise RuleError(
                        (*where, "match", "path", "regex"),
                        f"more than {MAX_REGEX_PATH_RULES} regex path rules; use prefix or template paths",
                    )
            self._index(index, rule, where)
        if ruleset.plan is not None:
            self._check_plan(ruleset)
        self._key_is_gray_id = ruleset.key.source == "gray_id"
        #: (host, path) -> the index's answer (see index_entry), for the
        #: host/path pairs seen lately: most traffic repeats a small set of them.
        self._recent: dict[tuple[str, str], tuple[tuple[int, ...], _Keyed]] = {}
        self._decider = Decider(
            rules=self.rules,
            index_entry=self.index_entry,
            with_values=with_values,
            recent=self._recent,
            recent_limit=RECENT_PATHS,
            recent_key_chars=RECENT_KEY_CHARS,
            recent_candidates=RECENT_CANDIDATES,
            color_decisions=self._color_decisions,
            no_match=None if ruleset.no_match == "404" else self._no_match,
            key=ruleset.key,
            fallback_key=ruleset.fallback_key,
        )

    # -- building ------------------------------------------------------------

    def _check_plan(self, ruleset: RuleSet) -> None:
        plan = t.cast("Plan", ruleset.plan)  # the caller checked it is set
        rule = next((r for r in ruleset.rules if r.name == plan.rule), None)
        if rule is None:
            raise RuleError(("plan", "rule"), f"no rule named {plan.rule!r}")
        if plan.cluster == ruleset.default_cluster:
            raise RuleError(("plan", "cluster"), "the plan must drive a cluster other than the default")
        if plan.cluster not in {b.cluster for b in rule.split}:
            raise RuleError(("plan", "cluster"), f"rule {plan.rule!r} has no split entry for {plan.cluster!r}")
        names: set[str] = set()
        for i, step in enumerate(plan.steps):
            if step.name in names:
                raise RuleError(("plan", "steps", i, "name"), f"duplicate step name {step.name!r}")
            names.add(step.name)
            if step.weight is not None and not 0 <= step.weight <= 100:
                raise RuleError(("plan", "steps", i, "weight"), f"a weight must be from 0 to 100, got {step.weight!r}")

    def _check_cluster(self, name: str, where: tuple[str | int, ...]) -> None:
        if name not in self.ruleset.clusters:
            known = ", ".join(sorted(self.ruleset.clusters))
            raise RuleError(where, f"unknown cluster {name!r} (clusters: {known})")

    @staticmethod
    def _check_key(key: KeySpec, where: tuple[str | int, ...]) -> None:
        if key.source not in ("gray_id", "header", "cookie", "query"):
            raise RuleError((*where, "from"), f"unknown key source {key.source!r}")
        if key.source != "gray_id" and not key.name:
            raise RuleError((*where, "name"), f"a {key.source} key needs a name")

    def _compile_rule(self, rule: Rule, where: tuple[str | int, ...]) -> CompiledRule:
        match = (*where, "match")
        checks: list[_Check] = []
        for dimension, lookup in (("headers", _header), ("query", _query), ("cookies", _cookie)):
            for i, condition in enumerate(getattr(rule, dimension)):
                checks.append(_value_check(condition, lookup, (*match, dimension, i)))
        if rule.api_version is not None:
            try:
                wanted = VersionRange(rule.api_version)
            except ValueError as exc:
                raise RuleError((*match, "api_version"), str(exc)) from None
            checks.append(_api_version_check(wanted))
        if rule.when is not None:
            try:
                expression = Expression(rule.when)
            except ExpressionError as exc:
                raise RuleError((*match, "when"), str(exc)) from None
            checks.append(expression.evaluate)
        present = {
            "host": bool(rule.hosts),
            "path": rule.path is not None,
            "headers": bool(rule.headers),
            "query": bool(rule.query),
            "cookies": bool(rule.cookies),
            "api_version": rule.api_version is not None,
            "when": rule.when is not None,
        }
        factor = 1.0
        for dimension, value in rule.factors.items():
            if dimension not in DIMENSIONS:
                raise RuleError((*where, "factors", dimension), f"unknown dimension (one of {', '.join(DIMENSIONS)})")
            if not present[dimension]:
                raise RuleError((*where, "factors", dimension), f"the rule does not match on {dimension}")
            if not 0 <= value <= 1:
                raise RuleError((*where, "factors", dimension), f"a factor must be from 0 to 1, got {value!r}")
            factor *= value
        versions = []
        for i, route in enumerate(rule.versions):
            at = (*where, "versions", i)
            self._check_cluster(route.cluster, (*at, "cluster"))
            if route.source not in ("version", "api_version"):
                raise RuleError((*at, "source"), f"must be 'version' or 'api_version', got {route.source!r}")
            if (route.exact is None) == (route.range is None):
                raise RuleError(at, "give exactly one of exact and range")
            version_range = None
            if route.range is not None:
                try:
                    version_range = VersionRange(route.range)
                except ValueError as exc:
                    raise RuleError((*at, "range"), str(exc)) from None
            exact = route.exact.strip() if route.exact is not None else None
            decision = Decision(route.cluster, self._group(route.cluster, None), rule.name, "version")
            versions.append((route.source, exact, version_range, decision))
        total = 0.0
        seen: set[str] = set()
        for i, backend in enumerate(rule.split):
            at = (*where, "split", i)
            self._check_cluster(backend.cluster, (*at, "cluster"))
            if backend.cluster in seen:
                raise RuleError((*at, "cluster"), f"cluster {backend.cluster!r} appears twice in the split")
            seen.add(backend.cluster)
            if not 0 <= backend.weight <= 100:
                raise RuleError((*at, "weight"), f"a weight must be from 0 to 100, got {backend.weight!r}")
            total += backend.weight
        if total > 100 + 1e-9:
            raise RuleError((*where, "split"), f"weights add up to {total:g}, more than 100")
        if rule.mode not in ("hash", "percent"):
            raise RuleError((*where, "mode"), f"must be 'hash' or 'percent', got {rule.mode!r}")
        backends = tuple(b for b in rule.split if b.cluster != self.ruleset.default_cluster)
        salt = (rule.salt + ":").encode("utf-8") if rule.salt else b""
        return CompiledRule(
            rule, tuple(checks), factor, tuple(versions), backends, salt, rule.mode == "percent",
            weighted=tuple(Decision(b.cluster, self._group(b.cluster, b.group), rule.name, "weight") for b in backends),
            fallthrough=Decision(self.ruleset.default_cluster, self.default_group, rule.name, "default"),
        )

    def _index(self, index: int, rule: Rule, where: tuple[str | int, ...]) -> None:
        buckets: list[_HostBucket] = []
        for i, host in enumerate(rule.hosts or ()):
            host = host.lower()
            if _HOST.fullmatch(host) is None:
                raise RuleError((*where, "match", "host", i), f"not a host name or *.wildcard: {host!r}")
            if host.startswith("*."):
                bucket = self._wildcard_hosts.setdefault(host[2:], _HostBucket())
            else:
                bucket = self._exact_hosts.setdefault(host, _HostBucket())
            if bucket not in buckets:
                buckets.append(bucket)
        if not rule.hosts:
            buckets.append(self._any_host)
        path = rule.path
        forms = [] if path is None else [f for f in ("prefix", "template", "regex") if getattr(path, f) is not None]
        if path is not None and len(forms) != 1:
            raise RuleError((*where, "match", "path"), "give exactly one of prefix, template, regex")
        value_key = _value_key(rule)
        for bucket in buckets:
            if path is None:
                _add(bucket.root, "prefix", index, value_key)
            elif path.prefix is not None:
                node = bucket.root
                for segment in _segments(path.prefix):
                    node = node.child(segment)
                _add(node, "prefix", index, value_key)
            elif path.template is not None:
                node = bucket.root
                for segment in _segments(path.template):
                    if _PARAM.fullmatch(segment):
                        node = node.child(None)
                    elif "{" in segment or "}" in segment:
                        raise RuleError(
                            (*where, "match", "path", "template"),
                            f"segment {segment!r}: a parameter must be a whole segment like {{id}}",
                        )
                    else:
                        node = node.child(segment)
                _add(node, "template", index, value_key)
            else:
                pattern = _compile_regex(t.cast(str, path.regex), (*where, "match", "path", "regex"))
                bucket.regex_rules.append((index, pattern))

    # -- deciding ------------------------------------------------------------

    def match(self, facts: RequestFacts) -> CompiledRule | None:
        """The first rule whose conditions all hold, or ``None``."""
        return self._decider.match(facts)

    def candidates(self, facts: RequestFacts) -> list[int]:
        """Indexes of the rules whose host and path fit, and whose indexed
        value (if they have one) is the request's, in declared order.

        Only these have their other conditions checked; their number depends
        on the request's host, path and values, not on the size of the rule set.
        """
        plain, keyed = self.index_entry(facts)
        return with_values(plain, keyed, facts)

    def index_entry(self, facts: RequestFacts) -> tuple[tuple[int, ...], _Keyed]:
        """What the index holds for the request's host and path: the rules
        that fit whatever the request's values (in declared order), and the
        value tables to look its values up in (see
        :func:`~graywsgi.rules.routing_index.with_values`)."""
        host = facts.host
        path = facts.path
        segments = _segments(path)
        candidates: list[int] = []
        tables: list[dict[tuple[str, str], dict[str, list[int]]]] = []
        bucket = self._exact_hosts.get(host)
        if bucket is not None:
            bucket.collect(segments, path, candidates, tables)
        hostname, _, port = host.partition(":")
        if port:
            bucket = self._exact_hosts.get(hostname)
            if bucket is not None:
                bucket.collect(segments, path, candidates, tables)
        if self._wildcard_hosts:
            dot = hostname.find(".")
            while dot != -1:
                bucket = self._wildcard_hosts.get(hostname[dot + 1 :])
                if bucket is not None:
                    bucket.collect(segments, path, candidates, tables)
                dot = hostname.find(".", dot + 1)
        self._any_host.collect(segments, path, candidates, tables)
        if len(candidates) > 1:
            candidates.sort()
        keyed = tuple((dimension, name, values) for table in tables for (dimension, name), values in table.items())
        return tuple(candidates), keyed

    def decide(
        self,
        facts: RequestFacts,
        *,
        canary_weight: float | None = None,
        plan_weight: tuple[str, str, float] | None = None,
        rng: t.Callable[[], float] = random.random,
    ) -> Decision | None:
        """Decide the route of a request; ``None`` means answer 404.

        :param facts: the request.
        :param canary_weight: a trusted ``X-Canary-Weight`` (0-1): the share
            of the matched rule's first non-default cluster, replacing its
            configured weight (factors still apply).
        :param plan_weight: ``(rule, cluster, weight)``: a rollout plan's
            current weight (percent) for that cluster in that rule,
            replacing the configured one.
        :param rng: random source for percent mode.
        """
        return self._decider.decide(facts, canary_weight, plan_weight, rng)

    def _group(self, cluster: str, explicit: str | None) -> str | None:
        if explicit is not None:
            return explicit
        return self.ruleset.clusters[cluster].group

    def decide_for(
        self,
        *,
        gray_id: str | None = None,
        host: str = "localhost",
        path: str = "/",
        headers: t.Mapping[str, str] | None = None,
        context: GrayContext | None = None,
    ) -> Decision | None:
        """Decide for a request described by keywords (docs, CLI, tests)."""
        from werkzeug.test import create_environ

        environ = create_environ(path, base_url=f"http://{host}/", headers=dict(headers or {}))
        if context is None:
            context = GrayContext(
                request_id="simulated",
                gray_id=gray_id,
                gray_key=gray_id.encode("utf-8") if gray_id is not None else None,
            )
        return self.decide(RequestFacts(environ, context))


def _api_version_check(wanted: VersionRange) -> _Check:
    def check(facts: RequestFacts) -> bool:
        context = facts.context
        if context is None or context.api_version is None:
            return False
        version = context.api_version.version
        return version is not None and wanted.contains(version)

    return check
