"""
Framework integrations
======================

:mod:`graywsgi.contrib.flask` (a Flask extension) and
:mod:`graywsgi.contrib.django` (a wrapper for a Django project's WSGI
application) build the same gray chain from the same settings; this module
is that shared part. Flask reads the settings from ``app.config`` keys with
the prefix ``GRAYWSGI_`` (``GRAYWSGI_PERCENT``); Django from a ``GRAYWSGI``
dict in its settings (``GRAYWSGI = {"PERCENT": 5}``).

.. code-block:: python

    from graywsgi.contrib import build_chain

    application = build_chain(wsgi_app, {"RULES": "rules.yaml"})

The chain, outermost first::

    [Metrics] -> Extraction -> [PreValidation] -> Router or CanarySplit -> app

Layers in brackets are not part of this version of graywsgi; their settings
are reserved (see below), and they take their place in the chain when they
land.

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
``BREAKER``                   dict of :class:`~graywsgi.core.breaker.BreakerPolicy`         defaults
                              fields, or a ``BreakerPolicy``
``GUARD_REFUSE_WHEN_OPEN``    bool: 503 instead of rerouting to stable                      ``False``
``GUARD_RETRY_ON_STABLE``     bool: lossless retry of failed idempotent requests            ``True``
``GUARD_LISTENERS``           list of ``BreakerListener`` objects or import                 ``[]``
                              strings
============================  ============================================================  ========

Reserved, for layers not in this version: ``METRICS`` and every key
starting ``METRICS_`` (statsd metrics), ``OPENAPI`` and every key starting
``OPENAPI_`` or ``VALIDATION_`` (request pre-validation). Setting one
raises :class:`SettingsError` rather than being silently ignored.

A value of ``None`` means the setting is not set (so
``os.environ.get(...)`` can be used directly), except for
``QUERY_FALLBACK``, where ``None`` turns the query fallback off.

Errors
------

A bad value, an unknown key (with the closest known key suggested) or a
reserved key raises :class:`SettingsError`, a
:class:`~graywsgi.errors.ConfigurationError` whose message starts with the
key as the framework spells it (``GRAYWSGI_PERCENT: ...`` under Flask,
``GRAYWSGI['PERCENT']: ...`` under Django). It is raised when the chain is
built -- at start-up, never on a request.

Per worker or shared
--------------------

A chain is built once per process. Under gunicorn each worker has its own
breaker windows, extraction breaker and (with ``STATE`` unset) its own
kill switch; rules and rollout state are shared by every worker only through
a file or Redis store. :meth:`GrayChain.after_fork` is for gunicorn's
``post_fork``/``post_worker_init`` hooks; see ``docs/gunicorn.md``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import typing as t

from graywsgi.core.breaker import BreakerListener, BreakerPolicy
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction, Resolver
from graywsgi.layers.extraction_breaker import ExtractionBreaker
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.rules.routing import CompiledRules
from graywsgi.rules.model import RuleSet
from graywsgi.layers.split import CANARY, STABLE, CanarySplit
from graywsgi.state.locations import open_state_store
from graywsgi.state.rollout_state import StateStore
from graywsgi.state.rule_store import FileStore, RuleStore
from graywsgi.httputil.trust import TrustPolicy

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "GrayChain",
    "SettingsError",
    "SETTINGS",
    "RESERVED_PREFIXES",
    "build_chain",
    "chain_of",
]

logger = logging.getLogger("graywsgi.contrib")

#: Every setting graywsgi understands, by name (without a framework prefix).
SETTINGS: frozenset[str] = frozenset(
    {
        "TRUSTED_NETWORKS",
        "SIGNING_KEYS",
        "SIGNATURE_HEADER",
        "SIGNATURE_MAX_SKEW",
        "REQUIRED",
        "MAX_LENGTH",
        "FALLBACK_AFTER",
        "QUERY_FALLBACK",
        "RESOLVERS",
        "EXTRACTION_BREAKER",
        "EXTRACTION_REFUSE_WHEN_OPEN",
        "RULES",
        "RULES_CHECK_INTERVAL",
        "APPS",
        "PROXY_TIMEOUT",
        "PERCENT",
        "COLORS",
        "GUARD",
        "STATE",
        "STATE_CHECK_INTERVAL",
        "BREAKER",
        "GUARD_REFUSE_WHEN_OPEN",
        "GUARD_RETRY_ON_STABLE",
        "GUARD_LISTENERS",
    }
)

#: Setting name prefixes kept for layers that are not in this version,
#: and what each is for.
RESERVED_PREFIXES: t.Mapping[str, str] = {
    "METRICS": "statsd metrics (the Metrics layer)",
    "OPENAPI": "request pre-validation (the PreValidation layer)",
    "VALIDATION": "request pre-validation (the PreValidation layer)",
}

_NONE_IS_A_VALUE = frozenset({"QUERY_FALLBACK"})
_ROUTER_ONLY = ("RULES_CHECK_INTERVAL", "APPS", "PROXY_TIMEOUT")
_GUARD_KEYS = (
    "STATE",
    "STATE_CHECK_INTERVAL",
    "BREAKER",
    "GUARD_REFUSE_WHEN_OPEN",
    "GUARD_RETRY_ON_STABLE",
    "GUARD_LISTENERS",
)

KeyName = t.Callable[[str], str]
T = t.TypeVar("T")


class SettingsError(ConfigurationError):
    """A graywsgi setting that cannot work.

    :param setting: the key as the framework spells it
        (``GRAYWSGI_PERCENT``, ``GRAYWSGI['PERCENT']``).
    :param problem: what is wrong with it.
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _plain_key(name: str) -> str:
    return name


def _noop_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    raise AssertionError("graywsgi.contrib: the settings probe app was called")  # pragma: no cover


class _Settings:
    """Read settings by name, attributing every error to its key."""

    def __init__(self, values: t.Mapping[str, object], key: KeyName) -> None:
        self.key = key
        for name, value in values.items():
            self._check_name(name, value)
        # None means "not set" (``os.environ.get(...)`` in a settings file),
        # except where None is a value of its own.
        self.values = {
            name: value for name, value in values.items() if value is not None or name in _NONE_IS_A_VALUE
        }

    def _check_name(self, name: object, value: object) -> None:
        if not isinstance(name, str):
            raise SettingsError(self.key(repr(name)), "setting names are strings")
        for prefix, purpose in RESERVED_PREFIXES.items():
            if value is not None and (name == prefix or name.startswith(prefix + "_")):
                raise SettingsError(
                    self.key(name),
                    f"reserved for {purpose}, which this version of graywsgi does not have yet",
                )
            if name == prefix or name.startswith(prefix + "_"):
                return
        if name not in SETTINGS:
            if name.upper() in SETTINGS:
                hint = f"; did you mean {self.key(name.upper())}? (names are upper case)"
            else:
                close = difflib.get_close_matches(name, sorted(SETTINGS), n=1)
                hint = f"; did you mean {self.key(close[0])}?" if close else ""
            raise SettingsError(self.key(name), f"unknown graywsgi setting{hint}")

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, convert: t.Callable[[object], T], default: T) -> T:
        """The converted value of ``name``, or ``default`` when it is not set."""
        if name not in self.values:
            return default
        try:
            return convert(self.values[name])
        except SettingsError:
            raise
        except (ConfigurationError, TypeError, ValueError, ImportError) as exc:
            raise SettingsError(self.key(name), str(exc)) from exc

    def fail(self, name: str, problem: str) -> t.NoReturn:
        raise SettingsError(self.key(name), problem)


# -- converters: each checks one value and raises TypeError/ValueError/
# ConfigurationError with a message that does not repeat the key.


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be True or False, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number, got {value!r}")
    return float(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an int, got {value!r}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"must be a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"must be a list of strings; {item!r} is not a string")
    return items


def _mapping(value: object) -> t.Mapping[str, object]:
    if not isinstance(value, t.Mapping):
        raise TypeError(f"must be a dict, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise TypeError(f"keys must be strings; {name!r} is not")
    return t.cast(t.Mapping[str, object], value)


def _imported(value: object) -> object:
    """An object, or the object an import string names (``pkg.mod:attr`` or ``pkg.mod.attr``)."""
    if not isinstance(value, str):
        return value
    module_name, colon, attribute = value.partition(":")
    if not colon:
        module_name, _, attribute = value.rpartition(".")
    if not module_name or not attribute:
        raise ImportError(f"cannot import {value!r}: write it as 'package.module:name'")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise ImportError(f"cannot import {value!r}: {exc}") from None
    except AttributeError:
        raise ImportError(f"cannot import {value!r}: module {module_name!r} has no {attribute!r}") from None
    return target


def _callables(value: object) -> tuple[t.Callable[..., t.Any], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"must be a list of callables or import strings, got {value!r}")
    found: list[t.Callable[..., t.Any]] = []
    for item in value:
        target = _imported(item)
        if not callable(target):
            raise TypeError(f"{item!r} is not callable")
        found.append(target)
    return tuple(found)


def _apps(value: object) -> dict[str, WSGIApplication]:
    apps: dict[str, WSGIApplication] = {}
    for cluster, target in _mapping(value).items():
        app = _imported(target)
        if not callable(app):
            raise TypeError(f"{cluster!r}: {target!r} is not a WSGI application")
        apps[cluster] = t.cast("WSGIApplication", app)
    return apps


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


def _keyword_object(factory: t.Callable[..., T], value: object) -> T:
    """``factory(**value)``, with unknown fields reported by name."""
    fields = _parameters(factory)
    if not isinstance(value, t.Mapping):
        raise TypeError(f"must be a dict with fields from {', '.join(fields)}; got {value!r}")
    unknown = sorted(set(_mapping(value)) - set(fields))
    if unknown:
        raise TypeError(f"unknown field {', '.join(map(repr, unknown))}; fields are {', '.join(fields)}")
    return factory(**value)


def _parameters(factory: t.Callable[..., object]) -> tuple[str, ...]:
    skip = ("self", "clock")
    return tuple(name for name in inspect.signature(factory).parameters if name not in skip)


def _breaker_policy(value: object) -> BreakerPolicy:
    if isinstance(value, BreakerPolicy):
        return value
    return _keyword_object(BreakerPolicy, value)


def _extraction_breaker(value: object) -> ExtractionBreaker:
    if isinstance(value, ExtractionBreaker):
        return value
    return _keyword_object(ExtractionBreaker, value)


class GrayChain:
    """The middleware graywsgi built from settings; a WSGI application.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> def show(environ, start_response):
    ...     return Response(current.route)(environ, start_response)
    >>> chain = build_chain(show, {"PERCENT": 15})
    >>> Client(chain).get("/", headers={"X-Gray-ID": "user-11"}, buffered=True).text
    'canary'
    >>> sorted(chain.routes())
    ['canary', 'stable']

    :ivar entry: the outermost layer: what the server calls.
    :ivar app: the application the chain wraps.
    :ivar extraction: the :class:`~graywsgi.layers.extraction.Extraction` layer.
    :ivar router: the :class:`~graywsgi.layers.router.Router`, with ``RULES``.
    :ivar split: the :class:`~graywsgi.layers.split.CanarySplit`, without ``RULES``.
    """

    __slots__ = ("entry", "app", "extraction", "router", "split", "_ready_pid")

    def __init__(
        self,
        *,
        app: WSGIApplication,
        extraction: Extraction,
        router: Router | None = None,
        split: CanarySplit | None = None,
    ) -> None:
        if (router is None) == (split is None):
            raise ConfigurationError("a gray chain has a router or a split, exactly one")
        self.app = app
        self.extraction = extraction
        self.router = router
        self.split = split
        self.entry: WSGIApplication = extraction
        self._ready_pid = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.entry(environ, start_response)

    def __repr__(self) -> str:
        layer = "Router" if self.router is not None else f"CanarySplit({self.split and self.split.percent}%)"
        return f"<GrayChain Extraction -> {layer} -> {self.app!r}>"

    @property
    def guard(self) -> Guard | None:
        """The router's guard (breakers, kill switch), if any."""
        return self.router.guard if self.router is not None else None

    @property
    def rules(self) -> RuleStore | None:
        """The rule store the router reads, if any."""
        return self.router.store if self.router is not None else None

    @property
    def state(self) -> StateStore | None:
        """The rollout-state store (kill switch), if there is a guard."""
        guard = self.guard
        return guard.state if guard is not None else None

    def routes(self) -> frozenset[str]:
        """The route names requests can get: the clusters of the rules in
        force, or ``canary`` and ``stable`` for a split."""
        if self.router is not None:
            return frozenset(self.router.store.current().ruleset.clusters)
        return frozenset({CANARY, STABLE})

    def status(self) -> dict[str, t.Any]:
        """What is in force, JSON-serialisable (see :meth:`Router.status`)."""
        if self.split is not None:
            return {"percent": self.split.percent, "clusters": sorted(self.routes())}
        return self.router.status() if self.router is not None else {}

    def after_fork(self) -> dict[str, t.Any]:
        """Get this worker process ready; call it once per worker after fork.

        Reads the rule store and the state store once, so that a worker
        opens its own Redis connection and picks up the rules in force
        before its first request, and logs what it serves. Nothing made in
        a parent process is reused: stores and proxy pools are fork-aware
        already. Calling it again in the same process does nothing more.

        :return: ``pid``, ``rules_version`` (or ``None``) and ``killed``.
        """
        pid = os.getpid()
        rules = self.rules
        state = self.state
        summary: dict[str, t.Any] = {
            "pid": pid,
            "rules_version": rules.current().version_id if rules is not None else None,
            "killed": state.current().killed if state is not None else False,
        }
        if self._ready_pid != pid:
            self._ready_pid = pid
            logger.info("graywsgi ready in process %d: %s", pid, summary)
        return summary


def build_chain(
    app: WSGIApplication,
    settings: t.Mapping[str, object],
    *,
    key: KeyName = _plain_key,
) -> GrayChain:
    """Build the gray chain around ``app`` from ``settings``.

    :param app: the WSGI application to wrap.
    :param settings: setting name (without framework prefix) -> value;
        see the module documentation.
    :param key: how to spell a setting name in an error message
        (``lambda name: "GRAYWSGI_" + name``).
    :raises SettingsError: naming the key, for an unknown, reserved or
        invalid setting, or a rule file that cannot be loaded.
    """
    if not isinstance(settings, t.Mapping):
        raise ConfigurationError(f"graywsgi settings must be a dict, got {type(settings).__name__}")
    read = _Settings(settings, key)
    trust = _trust(read)
    extraction_options = _extraction_options(read)

    if read.has("RULES") and read.has("PERCENT"):
        read.fail("PERCENT", f"set either {key('RULES')} (a rule file) or {key('PERCENT')}, not both")
    router: Router | None = None
    split: CanarySplit | None = None
    inner: WSGIApplication
    if read.has("RULES"):
        if read.has("COLORS"):
            read.fail("COLORS", f"with {key('RULES')}, colours are the rule file's 'colors:' section")
        router = _router(read, app)
        inner = router
    else:
        for name in (*_ROUTER_ONLY, "GUARD", *_GUARD_KEYS):
            if read.has(name):
                read.fail(name, f"needs {key('RULES')}: it configures the Router, and without a rule file "
                                f"graywsgi runs the plain CanarySplit")
        split_options: dict[str, t.Any] = {
            "percent": read.get("PERCENT", lambda v: CanarySplit(_noop_app, percent=_number(v)).percent, 0.0)
        }
        if read.has("COLORS"):
            colors: dict[str, str] = read.get("COLORS", _colors, {})
            split_options["colors"] = colors
        split = CanarySplit(app, **split_options)
        inner = split
    # The PreValidation layer takes its place here, between Extraction and the route.
    extraction = Extraction(inner, trust=trust, **extraction_options)
    # The Metrics layer, when it lands, wraps extraction (it times the whole request).
    return GrayChain(app=app, extraction=extraction, router=router, split=split)


def _colors(value: object) -> dict[str, str]:
    colors = {}
    for color, route in _mapping(value).items():
        if not isinstance(route, str):
            raise TypeError(f"{color!r}: the route must be a string, got {route!r}")
        colors[color] = route
    CanarySplit(_noop_app, colors=colors)
    return colors


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
                "graywsgi.state.redis_store.RedisRuleStore(url, initial='rules.yaml', key=...) as the value"
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


def _interval(value: object) -> float:
    seconds = _number(value)
    if not seconds >= 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"must be a number of seconds >= 0, got {value!r}")
    return seconds


def _positive(value: object) -> float:
    seconds = _number(value)
    if not 0 < seconds < float("inf"):
        raise ValueError(f"must be a number of seconds > 0, got {value!r}")
    return seconds


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
        raise TypeError(f"must be True, False or a graywsgi.layers.guard.Guard, got {value!r}")
    return value


def chain_of(application: object) -> GrayChain | None:
    """The :class:`GrayChain` behind ``application``, if graywsgi built one.

    Works for a chain itself (what :func:`graywsgi.contrib.django.wrap`
    returns) and for a Flask app set up with
    :class:`graywsgi.contrib.flask.GrayWSGI`. For gunicorn hooks, which see
    the application object gunicorn loaded (``worker.wsgi``).
    """
    if isinstance(application, GrayChain):
        return application
    extensions = getattr(application, "extensions", None)
    if isinstance(extensions, t.Mapping):
        chain = getattr(extensions.get("graywsgi"), "chain", None)
        if isinstance(chain, GrayChain):
            return chain
    return None
