"""
Router
======

The routing engine as middleware: for every request it takes the rule set
in force from a store, decides the route (see :mod:`graywsgi.rules.routing` for
the order: colour, rule, version, weighted clusters, default) and acts on
it.

.. code-block:: python

    from graywsgi import Extraction, Router

    app.wsgi_app = Extraction(Router(app.wsgi_app, "rules.yaml"))

What it records
---------------

- the context: ``current.route``, ``current.group``,
  ``current.rules_version`` (the version id of the rule set that decided)
  and ``current.route_reason`` (why: ``weight``, ``rerouted: breaker
  open``, ...);
- the environ, for the layers and the application below: the request
  headers ``X-Route-To`` (``HTTP_X_ROUTE_TO``) and ``X-Group``
  (``HTTP_X_GROUP``; removed when there is no group), and the full
  :class:`~graywsgi.rules.decision.Decision` at ``environ["graywsgi.decision"]``.

Three ways to act on the route
------------------------------

- **annotate** (default) -- the wrapped application serves every request
  and reads ``current.route`` itself;
- **dispatch** -- ``apps={"canary": canary_wsgi_app}``: requests routed to a
  named cluster are served by that WSGI application, in the same process;
- **proxy** -- a cluster with an ``upstream`` URL in the rule set: requests
  routed to it are forwarded there by :class:`graywsgi.httputil.proxy.UpstreamProxy`
  (pooled keep-alive connections, streamed bodies). ``apps`` wins over
  ``upstream``; a cluster with neither is served by the wrapped app.

Reload
------

``rules`` may be a :class:`~graywsgi.rules.model.RuleSet`, a
:class:`~graywsgi.state.rule_store.RuleStore`, or a path to a rule file, which becomes
a :class:`~graywsgi.state.rule_store.FileStore` (checked for changes at most once per
``check_interval``). A request reads the store once, so it is decided and
served under one rule set even if a reload happens meanwhile.

Trusted weight
--------------

A gateway may send ``X-Canary-Weight`` (a share from 0 to 1) to set the
matched rule's first non-default cluster's share for this request. It is
honoured only when :class:`~graywsgi.layers.extraction.Extraction` runs with a
:class:`~graywsgi.httputil.trust.TrustPolicy` that vouched for the request (trusted
network or valid signature); otherwise it is ignored.

Breakers and rollback
---------------------

With ``guard=`` a :class:`~graywsgi.layers.guard.Guard`, every request bound for a
canary route (any cluster but the default) is checked against the shared
kill switch and the route's sliding-window breaker first, and rerouted to
the default cluster while either says no; its outcome feeds the breaker.
See :mod:`graywsgi.layers.guard`.

Rollout plans
-------------

With a guard, a rule set's ``plan`` (:mod:`graywsgi.rules.plan`) drives its
cluster's weight in its rule through the plan's steps; the Router moves the
plan on (after a step's pause, when its gate holds, or when an operator asked
to) at most once per second per worker, and applies the current step's
weight to every decision.

Failing open
------------

An unexpected error while deciding is logged and the request goes to the
default cluster. With ``no_match="404"`` in the rule set, a request no rule
claims is answered 404 with problem+json.
"""

from __future__ import annotations

import functools
import logging
import typing as t

from graywsgi.state.polling import Throttle
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.guard import Guard
from graywsgi.layers.pipeline import DECISION, Pipeline
from graywsgi.state.rollout import Rollout
from graywsgi.layers.route_step import DECISION_KEY, RouteStep, not_found
from graywsgi.rules.routing import CompiledRules
from graywsgi.state.rule_store import RuleStore, as_store

if t.TYPE_CHECKING:  # pragma: no cover
    import os

    from _typeshed.wsgi import WSGIApplication

    from graywsgi.rules.model import RuleSet

__all__ = ["Router", "DECISION_KEY"]

logger = logging.getLogger("graywsgi.router")


class Router(Pipeline):
    """Route every request by a rule set, and act on the route.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
    >>> rules = RuleSet(
    ...     clusters={"stable": Cluster(), "canary": Cluster()},
    ...     rules=(Rule(name="half", split=(Backend("canary", 50),)),),
    ... )
    >>> def show(environ, start_response):
    ...     return Response(current.route)(environ, start_response)
    >>> client = Client(Extraction(Router(show, rules)))
    >>> client.get("/", headers={"X-Gray-ID": "user-1"}, buffered=True).text
    'canary'

    :param app: the WSGI application to wrap (serves annotated routes).
    :param rules: a rule set, a store, or a rule file path.
    :param apps: cluster name -> WSGI app, for dispatch.
    :param proxy_timeout: read timeout in seconds for proxied requests.
    :param guard: breakers, kill switch and lossless reroute for the canary
        routes (:class:`graywsgi.layers.guard.Guard`); none by default.
    """

    def __init__(
        self,
        app: WSGIApplication,
        rules: RuleStore | RuleSet | CompiledRules | str | os.PathLike[str],
        *,
        apps: t.Mapping[str, WSGIApplication] | None = None,
        proxy_timeout: float = 30.0,
        guard: Guard | None = None,
    ) -> None:
        Pipeline.__init__(self, app)
        if guard is not None and not isinstance(guard, Guard):
            raise ConfigurationError(f"guard must be a graywsgi.guard.Guard, got {guard!r}")
        store = as_store(rules)
        routed = dict(apps or {})
        for name, target in routed.items():
            if not callable(target):
                raise ConfigurationError(f"apps[{name!r}] is not a WSGI application")
        if isinstance(proxy_timeout, bool) or not (
            isinstance(proxy_timeout, (int, float)) and 0 < proxy_timeout < float("inf")
        ):
            raise ConfigurationError(f"proxy_timeout must be a finite number of seconds > 0, got {proxy_timeout!r}")
        self._rollout: Rollout | None = None
        self._plan_throttle = Throttle(1.0)
        self._standalone: Extraction | None = None
        store.current()  # fail at start, not on the first request
        self._step = self._route = RouteStep(self, store, guard, routed, float(proxy_timeout))
        self._fuse()

    _stage = DECISION

    @property
    def store(self) -> RuleStore:
        """Where the rule set in force comes from."""
        return self._route.store

    @property
    def guard(self) -> Guard | None:
        """The breakers and kill switch of the canary routes, if any."""
        return self._route.guard

    @property
    def apps(self) -> dict[str, WSGIApplication]:
        """Cluster name -> WSGI app, for dispatch."""
        return self._route.apps

    @property
    def proxy_timeout(self) -> float:
        """Read timeout in seconds for proxied requests."""
        return self._route.proxy_timeout

    def _standalone_extraction(self) -> Extraction:
        if self._standalone is None:
            self._standalone = Extraction(not_found)
        return self._standalone

    @property
    def rollout(self) -> Rollout | None:
        """The rollout of the rule set in force (its plan), with a guard; else ``None``."""
        rules = self.store.current()
        if rules.ruleset.plan is None or self.guard is None:
            return None
        rollout = self._rollout
        if rollout is None or rollout.plan is not rules.ruleset.plan:
            rollout = self._rollout = Rollout(rules.ruleset.plan, self.guard.state, self.guard)
        return rollout

    def _plan_weight(self, rules: CompiledRules) -> tuple[str, str, float] | None:
        try:
            rollout = self.rollout
            if rollout is None:
                return None
            self._plan_throttle.maybe(rollout.tick)
            weight = rollout.weight()
        except Exception:
            logger.exception("graywsgi rollout plan failed; configured weights apply")
            return None
        return None if weight is None else (rollout.plan.rule, rollout.plan.cluster, weight)

    def status(self) -> dict[str, t.Any]:
        """The rules in force and, with a guard, the kill switch and breakers."""
        rules = self.store.current()
        out: dict[str, t.Any] = {
            "rules_version": rules.version_id,
            "default_cluster": rules.ruleset.default_cluster,
            "clusters": sorted(rules.ruleset.clusters),
        }
        if self.guard is not None:
            out.update(self.guard.status())
        rollout = self.rollout
        if rollout is not None:
            out["plan"] = rollout.status()
        return out
