"""
The Router's step
=================

:class:`RouteStep` is :class:`~graywsgi.layers.router.Router`'s step in the request
path (:mod:`graywsgi.layers.pipeline`). Per request it takes the rule set in force,
decides the route, lets the :class:`~graywsgi.layers.guard.Guard` admit a canary
route (or reroutes the request to the default cluster), records the decision
in the context and the environ, and hands back the application that serves
the route. When the response ends it records the outcome in the route's
breaker or in the baseline; when a held canary fails before its status
reached the client it serves the request again from the default cluster.
What each of these means is documented with :mod:`graywsgi.layers.router` and
:mod:`graywsgi.layers.guard`; this module holds the code that runs per request,
compiled by Cython when the fast path is built (:mod:`graywsgi.speedups`).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import typing as t

from graywsgi.core.breaker import Admission
from graywsgi.core.context import ENVIRON_KEY, GrayContext, Source, _current_context, with_decision
from graywsgi.errors import problem_response
from graywsgi.rules.decision import Decision, request_facts
from graywsgi.layers.guard import IDEMPOTENT_METHODS, default_is_error
from graywsgi.layers.pipeline import DecisionStep

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from graywsgi.layers.guard import Guard
    from graywsgi.layers.pipeline import Exchange
    from graywsgi.rules.routing import CompiledRules
    from graywsgi.state.rule_store import RuleStore

__all__ = ["RouteStep", "DECISION_KEY"]

logger = logging.getLogger("graywsgi.router")

DECISION_KEY = "graywsgi.decision"
_TRUSTED = (Source.TRUSTED, Source.SIGNED)
_REJECT = Admission.REJECT
_ROUTE = GrayContext._fields.index("route")  # route, group, rules_version, route_reason follow


class RouteStep(DecisionStep):
    """Decide, admit, serve and record one request's route.

    :param router: the layer: its wrapped application, ``plan`` handling
        (``_plan_weight``) and rollout come from it.
    :param store: where the rule set in force comes from.
    :param guard: breakers and kill switch for the canary routes, or ``None``.
    :param apps: cluster name -> WSGI app, for dispatch.
    :param proxy_timeout: read timeout for proxied clusters.
    """

    def __init__(
        self,
        router: t.Any,
        store: RuleStore,
        guard: Guard | None,
        apps: dict[str, WSGIApplication],
        proxy_timeout: float,
    ) -> None:
        self.router = router
        self.store = store
        self.guard = guard
        self.apps = apps
        self.proxy_timeout = proxy_timeout
        self.proxies: dict[str, WSGIApplication] = {}
        self.proxies_lock = threading.Lock()

    def route(self, environ: WSGIEnvironment, context: GrayContext, exchange: Exchange) -> WSGIApplication:
        """Decide and record the route; the application to call."""
        rules: CompiledRules = self.store.current()  # one rule set for the whole request
        guard = self.guard
        plan_weight = None
        if guard is not None and rules.plan is not None:
            plan_weight = self.router._plan_weight(rules)
        try:
            decision = rules.decide(
                request_facts(environ, context),
                canary_weight=trusted_weight(environ) if "HTTP_X_CANARY_WEIGHT" in environ else None,
                plan_weight=plan_weight,
            )
        except Exception:
            logger.exception("graywsgi routing failed; sending the request to the default cluster")
            decision = Decision(rules.default_cluster, rules.default_group, None, "error")
        if decision is None:
            return not_found
        route = _capi.item(decision, 0) if cython.compiled else decision.route
        if guard is None:
            self.record(environ, context, rules, decision)
            return self.target(rules, route)
        default = rules.default_cluster
        if route != default:
            try:
                admission, why = guard.admit(route)
            except Exception:
                logger.exception("graywsgi guard failed; sending the request to the default cluster")
                admission, why = _REJECT, "guard error"
            if admission is not _REJECT:
                self.record(environ, context, rules, decision)
                exchange.route = route
                exchange.admission = admission
                exchange.finishing = True
                if guard.retry_on_stable and retryable(environ):
                    exchange.original = environ.copy()  # the canary may change environ
                    exchange.rules = rules
                    exchange.decision = decision
                    exchange.holding = True
                exchange.guarded_at = guard.now()
                return self.target(rules, route)
            if guard.refuse_when_open:
                seconds = max(1, math.ceil(guard.retry_after(route)))
                return functools.partial(refuse, route, why, seconds)
            decision = Decision(default, rules.default_group, decision.rule, f"rerouted: {why}")
        self.record(environ, context, rules, decision)
        exchange.route = default  # a default-cluster request: it feeds the baseline
        exchange.admission = None
        exchange.finishing = True
        exchange.guarded_at = guard.now()
        return self.target(rules, default)

    def retry(
        self, environ: WSGIEnvironment, exchange: Exchange, iterable: t.Iterable[bytes] | None
    ) -> t.Iterable[bytes]:
        """The held canary returned ``iterable`` (``None``: it raised): serve
        its response, or -- it failed before its status reached the client --
        serve the request again from the default cluster."""
        guard: Guard = self.guard  # type: ignore[assignment]  # a held canary has a guard
        if iterable is not None:
            if exchange.settle(iterable, None if guard.is_error is default_is_error else guard._failed):
                # Served: the copy is not needed (and it holds the exchange,
                # which holds it: a cycle only the collector would break).
                exchange.original = exchange.rules = exchange.decision = None
                return iterable
            raised = exchange.raised or exchange.line is None
        else:
            raised = True
        route = exchange.route
        guard.outcome(route, exchange.admission, exchange.guarded_at, exchange.code, raised)
        logger.info("graywsgi: %s failed (%s); served from the default cluster", route,
                    "raised" if raised else exchange.code)
        original: WSGIEnvironment = exchange.original  # type: ignore[assignment]  # set with holding
        rules: CompiledRules = exchange.rules
        canary: Decision = exchange.decision
        exchange.route = exchange.admission = exchange.original = exchange.rules = exchange.decision = None
        exchange.restart()
        default = rules.default_cluster
        retried = Decision(default, rules.default_group, canary.rule, "retried on the default cluster")
        self.record(original, original[ENVIRON_KEY], rules, retried)
        retried_context = environ[ENVIRON_KEY] = original[ENVIRON_KEY]  # what outer layers (metrics) read at close
        environ[DECISION_KEY] = retried
        _current_context.set(retried_context)  # the pipeline's token restores what was before
        return self.target(rules, default)(original, exchange)

    def finish(self, exchange: Exchange, raised: bool) -> None:
        """The response ended: record its outcome."""
        self.guard.outcome(  # type: ignore[union-attr]  # routes are recorded only with a guard
            exchange.route, exchange.admission, exchange.guarded_at, exchange.code, raised
        )

    def record(self, environ: WSGIEnvironment, context: GrayContext, rules: CompiledRules, decision: Decision) -> None:
        """Put the decision in the context (``environ["graywsgi.context"]``;
        the pipeline binds it) and the environ."""
        if cython.compiled:
            route = _capi.item(decision, 0)
            group = _capi.item(decision, 1)
            reason = _capi.item(decision, 3)
        else:
            route, group, _rule, reason = decision
        if cython.compiled:
            environ[ENVIRON_KEY] = _capi.record_with(
                GrayContext, context, _ROUTE, route, group, rules.version_id, reason
            )
        else:
            environ[ENVIRON_KEY] = with_decision(context, route, group, rules.version_id, reason)
        environ["HTTP_X_ROUTE_TO"] = route
        if group is not None:
            environ["HTTP_X_GROUP"] = group
        elif "HTTP_X_GROUP" in environ:
            del environ["HTTP_X_GROUP"]
        environ[DECISION_KEY] = decision

    def target(self, rules: CompiledRules, route: str) -> WSGIApplication:
        """The application that serves ``route``: dispatched, proxied or the wrapped one."""
        target = self.apps.get(route)
        if target is not None:
            return target
        cluster = rules.ruleset.clusters.get(route)
        if cluster is None or cluster.upstream is None:
            return self.router._app  # type: ignore[no-any-return]
        proxy = self.proxies.get(cluster.upstream)
        if proxy is None:
            from graywsgi.httputil.proxy import UpstreamProxy

            with self.proxies_lock:
                proxy = self.proxies.get(cluster.upstream)
                if proxy is None:
                    proxy = UpstreamProxy(cluster.upstream, timeout=self.proxy_timeout, name=route)
                    self.proxies[cluster.upstream] = proxy
        return proxy


def retryable(environ: WSGIEnvironment) -> bool:
    """Whether a failed canary may serve this request again from stable:
    an idempotent method and no body."""
    if environ.get("REQUEST_METHOD", "GET") not in IDEMPOTENT_METHODS or environ.get("HTTP_TRANSFER_ENCODING"):
        return False
    length = environ.get("CONTENT_LENGTH")
    return not length or length == "0"


def trusted_weight(environ: WSGIEnvironment) -> float | None:
    """``X-Canary-Weight`` (0-1) when a trust policy vouched for the request."""
    raw = environ.get("HTTP_X_CANARY_WEIGHT")
    if raw is None or environ.get("graywsgi.trust") not in _TRUSTED:
        return None
    try:
        weight = float(raw.strip(" \t"))
    except (ValueError, AttributeError):
        return None
    if not math.isfinite(weight) or not 0 <= weight <= 1:
        return None
    return weight


def not_found(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The answer when no rule claims a request and ``no_match`` is ``404``."""
    return problem_response(start_response, 404, "No route matches this request.")


def refuse(
    route: str, why: str, seconds: int, environ: WSGIEnvironment, start_response: StartResponse
) -> t.Iterable[bytes]:
    """The answer for a canary request the Guard rejects, with ``refuse_when_open``."""
    return problem_response(
        start_response,
        503,
        f"The {route} release is not taking traffic ({why}).",
        headers=[("Retry-After", str(seconds))],
    )
