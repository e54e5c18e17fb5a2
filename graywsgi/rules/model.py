"""
Rule sets
=========

A rule set says which *clusters* (routes) exist and, for hosts, paths,
headers, query parameters, cookies and API versions, which cluster gets
what share of traffic. It is plain, immutable data: build it in Python with
these classes, or load it from a YAML, JSON or TOML file with
:func:`graywsgi.rules.files.load_rules`. Either way it is checked and compiled
by :class:`graywsgi.rules.routing.CompiledRules` before it serves a request.

.. code-block:: python

    from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet

    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(
            Rule(
                name="checkout",
                hosts=("shop.example.com",),
                path=PathMatch(prefix="/checkout"),
                split=(Backend(cluster="canary", weight=20),),
            ),
        ),
    )

The same rule set as YAML::

    clusters: {stable: {}, canary: {}}
    rules:
      - name: checkout
        match:
          host: [shop.example.com]
          path: {prefix: /checkout}
        split:
          - {cluster: canary, weight: 20}

:meth:`RuleSet.from_dict` and :meth:`RuleSet.to_dict` convert between the
two; the file format is described by the JSON Schema
``graywsgi/schema/rules.schema.json`` (:func:`graywsgi.rules.files.rules_schema`).
"""

from __future__ import annotations

import hashlib
import json
import types
import typing as t
from dataclasses import dataclass, field

from graywsgi.rules.plan import Plan

__all__ = [
    "Backend",
    "Cluster",
    "KeySpec",
    "PathMatch",
    "Rule",
    "RuleSet",
    "ValueCondition",
    "VersionRoute",
    "DEFAULT_COLORS",
    "DIMENSIONS",
]

#: ``X-Traffic-Color`` values honoured by default, and the cluster each
#: selects (only colours whose cluster exists in the rule set apply).
DEFAULT_COLORS: t.Mapping[str, str] = types.MappingProxyType(
    {"canary": "canary", "gray": "canary", "stable": "stable"}
)

#: The match dimensions a rule can have a factor for.
DIMENSIONS = ("host", "path", "headers", "query", "cookies", "api_version", "when")


def _frozen(mapping: t.Mapping[str, t.Any]) -> t.Mapping[str, t.Any]:
    return types.MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Cluster:
    """A route traffic can be sent to.

    :param upstream: base URL for proxy mode (``http://10.0.0.7:8000``);
        ``None`` to annotate or dispatch only.
    :param group: A/B group reported for requests routed here (``X-Group``),
        unless the split entry names its own.
    """

    upstream: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """Where the sticky hash key comes from.

    :param source: ``gray_id`` (the context's gray id, as sent), ``header``,
        ``cookie`` or ``query``.
    :param name: the header, cookie or query parameter name.
    """

    source: str = "gray_id"
    name: str | None = None


@dataclass(frozen=True)
class ValueCondition:
    """A condition on one header, query parameter or cookie.

    Exactly one of ``exact``, ``prefix``, ``regex`` (full match) or
    ``present`` (``True``: must be there; ``False``: must be absent).
    """

    name: str
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None
    present: bool | None = None


@dataclass(frozen=True)
class PathMatch:
    """A path condition: exactly one of the three forms.

    :param prefix: whole-segment prefix: ``/api`` matches ``/api`` and
        ``/api/x``, not ``/apix``.
    :param template: a path with ``{param}`` segments: ``/orders/{id}``
        matches ``/orders/42`` and nothing longer or shorter.
    :param regex: a regular expression that must match the whole path.
    """

    prefix: str | None = None
    template: str | None = None
    regex: str | None = None


@dataclass(frozen=True)
class VersionRoute:
    """Send requests whose version matches to ``cluster``.

    :param cluster: the cluster to route to.
    :param exact: the version text, compared exactly (after trimming).
    :param range: a node-semver range (``^2``, ``>=1.4 <2``) that must
        contain the request's version.
    :param source: ``version`` (``X-Version``) or ``api_version``
        (``X-Api-Version``, when it names one exact version).
    """

    cluster: str
    exact: str | None = None
    range: str | None = None
    source: str = "version"


@dataclass(frozen=True)
class Backend:
    """One weighted entry of a rule's split.

    :param cluster: the cluster.
    :param weight: its share of the rule's traffic, in percent (0-100),
        before factors.
    :param group: the A/B group for requests it receives.
    """

    cluster: str
    weight: float
    group: str | None = None


@dataclass(frozen=True)
class Rule:
    """One routing rule: conditions that all must hold, then a decision.

    :param name: unique name, reported in logs and the context.
    :param hosts: exact hosts or ``*.example.com`` wildcards (any one).
    :param path: the path condition.
    :param headers: header conditions (all must hold).
    :param query: query parameter conditions.
    :param cookies: cookie conditions.
    :param api_version: a node-semver range the request's ``X-Api-Version``
        must fall in.
    :param when: an expression (:mod:`graywsgi.rules.expression`) for anything the
        structured conditions cannot say.
    :param factors: per-dimension factors (0-1) that multiply the split's
        weights: ``{"host": 0.9, "path": 1.0}`` with a 20 % canary gives 18 %.
    :param versions: version routes, tried before the split.
    :param split: the weighted clusters; what they leave goes to the rule
        set's default cluster.
    :param mode: ``hash`` (sticky by key) or ``percent`` (random per request).
    :param salt: decorrelates this rule's hash from other rules' (hash mode).
    """

    name: str
    hosts: tuple[str, ...] = ()
    path: PathMatch | None = None
    headers: tuple[ValueCondition, ...] = ()
    query: tuple[ValueCondition, ...] = ()
    cookies: tuple[ValueCondition, ...] = ()
    api_version: str | None = None
    when: str | None = None
    factors: t.Mapping[str, float] = field(default_factory=dict)
    versions: tuple[VersionRoute, ...] = ()
    split: tuple[Backend, ...] = ()
    mode: str = "hash"
    salt: str = ""


@dataclass(frozen=True)
class RuleSet:
    """A whole rule set: swapped in and out as one piece.

    :param clusters: cluster name -> :class:`Cluster`.
    :param rules: the rules, tried in order; the first that matches decides.
    :param default_cluster: where traffic goes that nothing else claims.
    :param colors: ``X-Traffic-Color`` value -> cluster.
    :param key: where the sticky hash key comes from.
    :param fallback_key: the key used when ``key`` is missing (e.g. the
        gray id was stripped as untrusted): a cookie or header the service
        owns.
    :param no_match: ``"default"`` (unmatched requests go to the default
        cluster) or ``"404"``.
    :param id: the rule-set version id; a hash of the content when omitted.
    :param plan: a rollout plan (:mod:`graywsgi.rules.plan`) driving one
        cluster's weight in one rule.
    """

    clusters: t.Mapping[str, Cluster]
    rules: tuple[Rule, ...] = ()
    default_cluster: str = "stable"
    colors: t.Mapping[str, str] = field(default_factory=lambda: DEFAULT_COLORS)
    key: KeySpec = KeySpec()
    fallback_key: KeySpec | None = None
    no_match: str = "default"
    id: str | None = None
    plan: Plan | None = None

    @property
    def version_id(self) -> str:
        """``id`` if set, else the first 12 hex digits of the content's SHA-256."""
        if self.id:
            return self.id
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> RuleSet:
        """Build a rule set from the file format (already schema-checked)."""
        rules = tuple(_rule_from_dict(item) for item in data.get("rules", ()))
        return cls(
            clusters=_frozen(
                {
                    name: Cluster(upstream=spec.get("upstream"), group=spec.get("group"))
                    for name, spec in data["clusters"].items()
                }
            ),
            rules=rules,
            default_cluster=data.get("default_cluster", "stable"),
            colors=_frozen(data["colors"]) if "colors" in data else DEFAULT_COLORS,
            key=_key_from_dict(data["key"]) if "key" in data else KeySpec(),
            fallback_key=_key_from_dict(data["fallback_key"]) if "fallback_key" in data else None,
            no_match=str(data.get("no_match", "default")),
            id=data.get("id"),
            plan=Plan.from_dict(data["plan"]) if data.get("plan") else None,
        )

    def to_dict(self) -> dict[str, t.Any]:
        """The rule set in the file format (JSON-compatible)."""
        out: dict[str, t.Any] = {
            "version": 1,
            "clusters": {
                name: _drop_none({"upstream": c.upstream, "group": c.group})
                for name, c in self.clusters.items()
            },
            "default_cluster": self.default_cluster,
            "no_match": self.no_match,
            "colors": dict(self.colors),
            "key": _drop_none({"from": self.key.source, "name": self.key.name}),
            "rules": [_rule_to_dict(rule) for rule in self.rules],
        }
        if self.colors is DEFAULT_COLORS:
            del out["colors"]  # the defaults apply only where their clusters exist
        if self.fallback_key is not None:
            out["fallback_key"] = _drop_none(
                {"from": self.fallback_key.source, "name": self.fallback_key.name}
            )
        if self.id:
            out["id"] = self.id
        if self.plan is not None:
            out["plan"] = self.plan.to_dict()
        return out


def _drop_none(mapping: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def _key_from_dict(data: t.Mapping[str, t.Any]) -> KeySpec:
    return KeySpec(source=data["from"], name=data.get("name"))


def _condition_from_dict(data: t.Mapping[str, t.Any]) -> ValueCondition:
    return ValueCondition(
        name=data["name"],
        exact=data.get("exact"),
        prefix=data.get("prefix"),
        regex=data.get("regex"),
        present=data.get("present"),
    )


def _rule_from_dict(data: t.Mapping[str, t.Any]) -> Rule:
    match = data.get("match", {})
    path = match.get("path")
    return Rule(
        name=data["name"],
        hosts=tuple(match.get("host", ())),
        path=PathMatch(**path) if path else None,
        headers=tuple(_condition_from_dict(c) for c in match.get("headers", ())),
        query=tuple(_condition_from_dict(c) for c in match.get("query", ())),
        cookies=tuple(_condition_from_dict(c) for c in match.get("cookies", ())),
        api_version=match.get("api_version"),
        when=match.get("when"),
        factors=_frozen({k: float(v) for k, v in data.get("factors", {}).items()}),
        versions=tuple(
            VersionRoute(
                cluster=v["cluster"],
                exact=v.get("exact"),
                range=v.get("range"),
                source=v.get("source", "version"),
            )
            for v in data.get("versions", ())
        ),
        split=tuple(
            Backend(cluster=b["cluster"], weight=float(b["weight"]), group=b.get("group"))
            for b in data.get("split", ())
        ),
        mode=data.get("mode", "hash"),
        salt=data.get("salt", ""),
    )


def _condition_to_dict(condition: ValueCondition) -> dict[str, t.Any]:
    return _drop_none(
        {
            "name": condition.name,
            "exact": condition.exact,
            "prefix": condition.prefix,
            "regex": condition.regex,
            "present": condition.present,
        }
    )


def _rule_to_dict(rule: Rule) -> dict[str, t.Any]:
    match: dict[str, t.Any] = {}
    if rule.hosts:
        match["host"] = list(rule.hosts)
    if rule.path is not None:
        match["path"] = _drop_none(
            {"prefix": rule.path.prefix, "template": rule.path.template, "regex": rule.path.regex}
        )
    for dimension in ("headers", "query", "cookies"):
        conditions = getattr(rule, dimension)
        if conditions:
            match[dimension] = [_condition_to_dict(c) for c in conditions]
    if rule.api_version is not None:
        match["api_version"] = rule.api_version
    if rule.when is not None:
        match["when"] = rule.when
    out: dict[str, t.Any] = {"name": rule.name}
    if match:
        out["match"] = match
    if rule.factors:
        out["factors"] = dict(rule.factors)
    if rule.versions:
        out["versions"] = [
            _drop_none({"cluster": v.cluster, "exact": v.exact, "range": v.range, "source": v.source})
            for v in rule.versions
        ]
    if rule.split:
        out["split"] = [
            _drop_none({"cluster": b.cluster, "weight": b.weight, "group": b.group}) for b in rule.split
        ]
    out["mode"] = rule.mode
    if rule.salt:
        out["salt"] = rule.salt
    return out
