"""
Admin status
============

The status document of the admin app
(:class:`~graywsgi.rollout.admin.app.AdminApp`): what ``GET /status``
answers as JSON and the page (:mod:`graywsgi.rollout.admin.page`) shows --
the kill switch, the rollout plan, each route's breaker and window, and
each rule's shares. Its members are listed at
:meth:`~graywsgi.rollout.admin.app.AdminApp.status`.

Each status render also records one error-rate sample per route, the short
history the page's charts are drawn from (in memory, per worker).

Shares are computed from the rule set: each split weight times the rule's
factors, the plan's weight for the cluster it drives, the rest to the
default cluster. Traffic that colours, version routes or a trusted
``X-Canary-Weight`` send elsewhere is not in them.
"""

from __future__ import annotations

import logging
import math
import threading
import typing as t
from collections import deque

from graywsgi.layers.router import Router
from graywsgi.rollout.admin.actions import RolloutControl, _kill_switch
from graywsgi.state.rollout_state import StateStore

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi.state.rollout import Rollout

__all__ = ["HISTORY_SIZE"]

logger = logging.getLogger("graywsgi.admin")

#: Error-rate samples kept per route for the page's charts.
HISTORY_SIZE = 60


class _History:
    """Per-route error-rate samples, bounded in length and in routes."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._series: dict[str, deque[tuple[float, float | None]]] = {}
        self._lock = threading.Lock()

    def sample(self, now: float, rates: t.Mapping[str, float | None]) -> dict[str, list[tuple[float, float | None]]]:
        """Add one sample per route (replacing one less than a second old);
        forget routes no longer in ``rates``; return every series."""
        with self._lock:
            for route in [r for r in self._series if r not in rates]:
                del self._series[route]
            for route, rate in rates.items():
                series = self._series.get(route)
                if series is None:
                    series = self._series[route] = deque(maxlen=self._size)
                if series and 0 <= now - series[-1][0] < 1.0:
                    series[-1] = (now, rate)
                else:
                    series.append((now, rate))
            return {route: list(series) for route, series in self._series.items()}


def _status_document(
    router: Router,
    state: StateStore | None,
    rollout: RolloutControl | None,
    evolution: t.Any,
    history: _History,
    now: float,
) -> dict[str, t.Any]:
    """The status document at ``now`` (see :meth:`~graywsgi.rollout.admin.app.AdminApp.status`);
    records one ``history`` sample per route."""
    compiled = router.store.current()
    ruleset = compiled.ruleset
    default = ruleset.default_cluster
    guard = router.guard
    guard_status = guard.status() if guard is not None else {}
    kill: dict[str, t.Any] | None = None
    shared_routes: t.Mapping[str, t.Any] = {}
    if state is not None:
        try:
            current = state.fetch()
        except Exception as exc:
            kill = {"killed": None, "reason": "", "since": None, "revision": None,
                    "error": f"the state store could not be read: {exc}"}
        else:
            kill = _kill_switch(current)
            shared_routes = current.routes
    killed = bool(kill and kill["killed"])
    rollout_status, plan_weight = _rollout_status(router, rollout)

    routes: dict[str, dict[str, t.Any]] = {}
    breakers: t.Mapping[str, t.Mapping[str, t.Any]] = guard_status.get("breakers", {})
    for name in sorted(ruleset.clusters, key=lambda n: (n != default, n)):
        entry: dict[str, t.Any] = {"default": name == default, "breaker": None, "shared": None, "window": None}
        snapshot = breakers.get(name)
        if name == default:
            if guard is not None:
                entry["window"] = _window(guard_status.get("baseline", {}))
        elif snapshot is not None:
            entry["breaker"] = {
                key: snapshot.get(key) for key in ("state", "held", "opened_at", "retry_after", "probes")
            }
            entry["window"] = _window({**t.cast(dict[str, t.Any], snapshot.get("totals") or {}), **snapshot})
        elif guard is not None:
            entry["window"] = _window({})
        shared = shared_routes.get(name)
        if shared is not None:
            entry["shared"] = {"open": shared.open, "since": shared.since, "reason": shared.reason}
        why_not = ""
        if name != default:
            if killed:
                why_not = "kill switch set"
            elif entry["breaker"] is not None and entry["breaker"]["state"] in ("open", "half_open"):
                why_not = f"breaker {entry['breaker']['state'].replace('_', '-')}"
            elif entry["shared"] is not None and entry["shared"]["open"]:
                why_not = "breaker open (shared)"
        entry["taking_traffic"] = not why_not
        entry["why_not"] = why_not
        routes[name] = entry

    rules = []
    for rule in ruleset.rules:
        factor = math.prod(rule.factors.values()) if rule.factors else 1.0
        shares: dict[str, float] = {}
        for backend in rule.split:
            weight = backend.weight
            if plan_weight is not None and plan_weight[0] == rule.name and plan_weight[1] == backend.cluster:
                weight = plan_weight[2]
            shares[backend.cluster] = shares.get(backend.cluster, 0.0) + weight * factor
        shares[default] = shares.get(default, 0.0) + max(0.0, 100.0 - sum(shares.values()))
        in_force: dict[str, float] = {}
        for cluster, share in shares.items():
            target = cluster if routes.get(cluster, {}).get("taking_traffic", True) else default
            in_force[target] = in_force.get(target, 0.0) + share
            in_force.setdefault(cluster, 0.0)
        rules.append({
            "name": rule.name,
            "mode": rule.mode,
            "factor": round(factor, 6),
            "shares": {k: round(v, 4) for k, v in shares.items()},
            "in_force": {k: round(v, 4) for k, v in in_force.items()},
        })

    rates = {
        name: (entry["window"]["error_rate"] if entry["window"] and entry["window"]["requests"] else None)
        for name, entry in routes.items()
    }
    for name, series in history.sample(now, rates).items():
        routes[name]["error_rate_history"] = [[round(when, 3), rate] for when, rate in series]
    return {
        "generated_at": now,
        "rules_version": compiled.version_id,
        "default_cluster": default,
        "clusters": sorted(ruleset.clusters),
        "no_match": ruleset.no_match,
        "kill_switch": kill,
        "rollout": rollout_status,
        "protocol_evolution": evolution.status() if evolution is not None else None,
        "trip_error_rate": guard.policy.error_rate if guard is not None else None,
        "routes": routes,
        "rules": rules,
    }


def _rollout_status(
    router: Router, rollout: RolloutControl | None
) -> tuple[dict[str, t.Any] | None, tuple[str, str, float] | None]:
    """The plan's status, and the ``(rule, cluster, weight)`` the
    router's own plan imposes now (what the router applies)."""
    imposed = None
    plan: Rollout | None = None
    try:
        plan = router.rollout
        weight = plan.weight() if plan is not None else None
        if plan is not None and weight is not None:
            imposed = (plan.plan.rule, plan.plan.cluster, weight)
    except Exception:
        logger.exception("graywsgi admin: the rollout plan's weight could not be read")
    try:
        if rollout is not None:
            return rollout.status(), imposed
        return (plan.status() if plan is not None else None), imposed
    except Exception as exc:
        logger.exception("graywsgi admin: the rollout status could not be read")
        return {"error": f"{type(exc).__name__}: {exc}"}, imposed


def _window(data: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    requests = int(data.get("requests") or 0)
    errors = int(data.get("errors") or 0)
    slow = int(data.get("slow") or 0)
    window: dict[str, t.Any] = {
        "requests": requests,
        "errors": errors,
        "slow": slow,
        "error_rate": errors / requests if requests else 0.0,
        "slow_rate": slow / requests if requests else 0.0,
    }
    for key, value in data.items():
        if "latency" in key:
            window[key] = value
    return window
