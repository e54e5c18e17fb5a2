"""
Settings of each layer
======================

Every key graywsgi understands, by the layer it configures, and the code
that turns a layer's keys into that layer (or its options) for
:func:`~graywsgi.contrib.chain.build_chain` (which reads ``PERCENT`` and
``COLORS`` itself, when there is no rule file). The keys are read and checked
one by one by :mod:`graywsgi.contrib.settings` (where ``None`` values,
reserved keys and errors are described); Flask spells them
``GRAYWSGI_<KEY>``, Django as keys of its ``GRAYWSGI`` dict.

Settings
--------

Trust boundary (:class:`~graywsgi.httputil.trust.TrustPolicy`; with neither
``TRUSTED_NETWORKS`` nor ``SIGNING_KEYS`` every gray header is honoured --
development only):

========================  =======================================  ===================
Key                       Value                                    Default
========================  =======================================  ===================
``TRUSTED_NETWORKS``      list of CIDR strings or addresses        ``[]``
``SIGNING_KEYS``          dict: key id -> shared secret            ``{}``
``SIGNATURE_HEADER``      header name                              ``X-Gray-Signature``
``SIGNATURE_MAX_SKEW``    seconds                                  ``300``
========================  =======================================  ===================

Extraction (:class:`~graywsgi.layers.extraction.Extraction`):

===============================  ===================================================  ===========
Key                              Value                                                Default
===============================  ===================================================  ===========
``REQUIRED``                     list of identifier names (``"gray_id"``, ...)        ``[]``
``MAX_LENGTH``                   int, bytes                                           ``256``
``FALLBACK_AFTER``               int >= 2                                             ``2``
``QUERY_FALLBACK``               query parameter name, or ``None``                    ``"gray_id"``
``RESOLVERS``                    list of callables or import strings                  ``[]``
``EXTRACTION_BREAKER``           dict: ``failure_threshold``, ``slow_call``,          defaults
                                 ``open_for``
``EXTRACTION_REFUSE_WHEN_OPEN``  bool: 503 instead of the fallback context (L3)       ``False``
===============================  ===================================================  ===========

The route -- either a rule file (:class:`~graywsgi.layers.router.Router`) or a
plain percentage (:class:`~graywsgi.layers.split.CanarySplit`), never both. With
neither, the split runs at 0 %: only an explicit colour reaches canary
(a dark launch).

=========================  ========================================================  ==========
Key                        Value                                                     Default
=========================  ========================================================  ==========
``RULES``                  rule file path, or a ``RuleSet`` / ``RuleStore``          --
                           (e.g. a ``RedisRuleStore``)
``RULES_CHECK_INTERVAL``   seconds between checks of the rule file                   ``1.0``
``APPS``                   dict: cluster -> WSGI app or import string (dispatch)     ``{}``
``PROXY_TIMEOUT``          seconds, for clusters with an ``upstream``                ``30``
``PERCENT``                0-100: share of hash buckets on canary                    ``0``
``COLORS``                 dict: ``X-Traffic-Color`` value -> ``canary``/``stable``  built-in
=========================  ========================================================  ==========

Breakers and rollback (:class:`~graywsgi.layers.guard.Guard`; with ``RULES`` only).
A guard is built when any of these is set; ``GUARD = True`` builds one with
every default (state in memory: this process only).

============================  ============================================================  ========
Key                           Value                                                         Default
============================  ============================================================  ========
``GUARD``                     ``True``, or a ready :class:`~graywsgi.layers.guard.Guard`    --
                              (then no other key below may be set)
``STATE``                     state file path, ``redis://host:port/db#key``, or             memory
                              a :class:`~graywsgi.state.rollout_state.StateStore`
``STATE_CHECK_INTERVAL``      seconds between reads of the state                            ``0.05``
``BREAKER``                   dict of :class:`~graywsgi.core.breaker_policy.BreakerPolicy`         defaults
                              fields, or a ``BreakerPolicy``
``GUARD_REFUSE_WHEN_OPEN``    bool: 503 instead of rerouting to stable                      ``False``
``GUARD_RETRY_ON_STABLE``     bool: lossless retry of failed idempotent requests            ``True``
``GUARD_LISTENERS``           list of ``BreakerListener`` objects or import                 ``[]``
                              strings
============================  ============================================================  ========
"""

from __future__ import annotations

import os
import typing as t

from graywsgi.contrib.settings import (
    _bool,
    _callables,
    _imported,
    _int,
    _interval,
    _keyword_object,
    _mapping,
    _noop_app,
    _number,
    _positive,
    _Settings,
    _strings,
)
from graywsgi.core.breaker import BreakerListener, BreakerPolicy
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.trust import TrustPolicy
from graywsgi.layers.extraction import Extraction, Resolver
from graywsgi.layers.extraction_breaker import ExtractionBreaker
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.layers.split import CanarySplit
from graywsgi.rules.model import RuleSet
from graywsgi.rules.routing import CompiledRules
from graywsgi.state.locations import open_state_store
from graywsgi.state.rollout_state import StateStore
from graywsgi.state.rule_store import FileStore, RuleStore

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication

__all__: list[str] = []

_ROUTER_ONLY = ("RULES_CHECK_INTERVAL", "APPS", "PROXY_TIMEOUT")
_GUARD_KEYS = (
    "STATE",
    "STATE_CHECK_INTERVAL",
    "BREAKER",
    "GUARD_REFUSE_WHEN_OPEN",
    "GUARD_RETRY_ON_STABLE",
    "GUARD_LISTENERS",
)

T = t.TypeVar("T")


# -- trust boundary


def _trust(read: _Settings) -> TrustPolicy | None:
    names = ("TRUSTED_NETWORKS", "SIGNING_KEYS", "SIGNATURE_HEADER", "SIGNATURE_MAX_SKEW")
    if not any(read.has(name) for name in names):
        return None
    networks: tuple[str, ...] = read.get("TRUSTED_NETWORKS", _networks, ())
    keys: dict[str, str | bytes] = read.get("SIGNING_KEYS", _signing_keys, {})
    header = read.get(
        "SIGNATURE_HEADER", lambda v: TrustPolicy(signature_header=t.cast(str, v)).signature_header, "X-Gray-Signature"
    )
    skew = read.get("SIGNATURE_MAX_SKEW", lambda v: TrustPolicy(max_skew=_number(v)).max_skew, 300.0)
    if not networks and not keys:
        read.fail(
            next(name for name in names if read.has(name)),
            f"a trust boundary needs {read.key('TRUSTED_NETWORKS')} or {read.key('SIGNING_KEYS')}: "
            "with neither, no request could ever choose its route",
        )
    return TrustPolicy(trusted_networks=networks, signing_keys=keys, signature_header=header, max_skew=skew)


def _networks(value: object) -> tuple[str, ...]:
    networks = _strings(value)
    TrustPolicy(trusted_networks=networks)
    return networks


def _signing_keys(value: object) -> dict[str, str | bytes]:
    keys: dict[str, str | bytes] = {}
    for key_id, secret in _mapping(value).items():
        if not isinstance(secret, (str, bytes)):
            raise TypeError(f"the secret of {key_id!r} must be a string")
        keys[key_id] = secret
    TrustPolicy(signing_keys=keys)
    return keys


# -- extraction


def _extraction_options(read: _Settings) -> dict[str, t.Any]:
    def probe(**option: object) -> None:
        Extraction(_noop_app, **option)  # type: ignore[arg-type]

    def checked(name: str, convert: t.Callable[[object], T]) -> t.Callable[[object], T]:
        def check(value: object) -> T:
            converted = convert(value)
            probe(**{name: converted})
            return converted

        return check

    options: dict[str, t.Any] = {}
    for setting, option, convert in (
        ("REQUIRED", "required", _strings),
        ("MAX_LENGTH", "max_length", _int),
        ("FALLBACK_AFTER", "fallback_after", _int),
        ("QUERY_FALLBACK", "query_fallback", _optional_str),
    ):
        if read.has(setting):
            options[option] = read.get(setting, checked(option, convert), None)
    if read.has("RESOLVERS"):
        resolvers: tuple[t.Callable[..., t.Any], ...] = read.get("RESOLVERS", _callables, ())
        options["resolvers"] = t.cast(t.Sequence[Resolver], resolvers)
    if read.has("EXTRACTION_BREAKER"):
        options["breaker"] = read.get("EXTRACTION_BREAKER", _extraction_breaker, None)
    options["refuse_when_open"] = read.get("EXTRACTION_REFUSE_WHEN_OPEN", _bool, False)
    return options


def _optional_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"must be a query parameter name or None, got {value!r}")
    return value


#: ExtractionBreaker's options (compiled, the class has no signature to read them from).
EXTRACTION_BREAKER_FIELDS = ("failure_threshold", "slow_call", "open_for")


def _extraction_breaker(value: object) -> ExtractionBreaker:
    if isinstance(value, ExtractionBreaker):
        return value
    return _keyword_object(ExtractionBreaker, value, EXTRACTION_BREAKER_FIELDS)


# -- the route


def _colors(value: object) -> dict[str, str]:
    colors = {}
    for color, route in _mapping(value).items():
        if not isinstance(route, str):
            raise TypeError(f"{color!r}: the route must be a string, got {route!r}")
        colors[color] = route
    CanarySplit(_noop_app, colors=colors)
    return colors


def _router(read: _Settings, app: WSGIApplication) -> Router:
    interval = read.get("RULES_CHECK_INTERVAL", _interval, 1.0)

    def rules(value: object) -> RuleStore | RuleSet | CompiledRules | None:
        if isinstance(value, (RuleStore, RuleSet, CompiledRules)):
            return value
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise TypeError(f"must be a rule file path, a RuleSet or a RuleStore, got {type(value).__name__}")
        if value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "rules in Redis need a rule set to start from: pass "
                "graywsgi.redis_store.RedisRuleStore(url, initial='rules.yaml', key=...) as the value"
            )
        return FileStore(value, check_interval=interval)

    store = read.get("RULES", rules, None)
    if store is None:
        read.fail("RULES", "must be a rule file path, a RuleSet or a RuleStore, got None")
    apps: dict[str, WSGIApplication] = read.get("APPS", _apps, {})
    timeout = read.get("PROXY_TIMEOUT", _positive, 30.0)
    guard = _guard(read)
    try:
        router = Router(app, store, apps=apps, proxy_timeout=timeout, guard=guard)
    except ConfigurationError as exc:
        read.fail("RULES", str(exc))
    unknown = sorted(set(apps) - set(router.store.current().ruleset.clusters))
    if unknown:
        read.fail("APPS", f"{', '.join(map(repr, unknown))} not a cluster of the rules in force "
                          f"(clusters: {', '.join(sorted(router.store.current().ruleset.clusters))})")
    return router


def _apps(value: object) -> dict[str, WSGIApplication]:
    apps: dict[str, WSGIApplication] = {}
    for cluster, target in _mapping(value).items():
        app = _imported(target)
        if not callable(app):
            raise TypeError(f"{cluster!r}: {target!r} is not a WSGI application")
        apps[cluster] = t.cast("WSGIApplication", app)
    return apps


# -- breakers and rollback


def _guard(read: _Settings) -> Guard | None:
    configured = [name for name in _GUARD_KEYS if read.has(name)]
    if read.has("GUARD"):
        value = read.values["GUARD"]
        if isinstance(value, Guard):
            if configured:
                read.fail(configured[0], f"{read.key('GUARD')} is a ready Guard; configure it there")
            return value
        enabled = read.get("GUARD", _guard_switch, False)
        if not enabled:
            if configured:
                read.fail("GUARD", f"is False, but {read.key(configured[0])} configures a guard")
            return None
    elif not configured:
        return None
    check_interval = read.get("STATE_CHECK_INTERVAL", _interval, 0.05)

    def state(value: object) -> StateStore:
        if isinstance(value, StateStore):
            return value
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            raise TypeError(f"must be a state file path, a redis:// URL or a StateStore, got {value!r}")
        return open_state_store(value, check_interval=check_interval)

    if read.has("STATE_CHECK_INTERVAL") and isinstance(read.values.get("STATE"), StateStore):
        read.fail("STATE_CHECK_INTERVAL", f"{read.key('STATE')} is a ready store; set its check_interval there")
    return Guard(
        policy=read.get("BREAKER", _breaker_policy, BreakerPolicy()),
        state=read.get("STATE", state, None),
        listeners=read.get("GUARD_LISTENERS", _listeners, ()),
        refuse_when_open=read.get("GUARD_REFUSE_WHEN_OPEN", _bool, False),
        retry_on_stable=read.get("GUARD_RETRY_ON_STABLE", _bool, True),
    )


def _guard_switch(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be True, False or a graywsgi.guard.Guard, got {value!r}")
    return value


def _breaker_policy(value: object) -> BreakerPolicy:
    if isinstance(value, BreakerPolicy):
        return value
    return _keyword_object(BreakerPolicy, value)


def _listeners(value: object) -> tuple[BreakerListener, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"must be a list of BreakerListener objects or import strings, got {value!r}")
    found = []
    for item in value:
        listener = _imported(item)
        if isinstance(listener, type) and issubclass(listener, BreakerListener):
            listener = listener()
        if not isinstance(listener, BreakerListener):
            raise TypeError(f"{item!r} is not a graywsgi.core.breaker.BreakerListener")
        found.append(listener)
    return tuple(found)
