"""The app the breaker/rollback gunicorn tests serve.

Every request goes to the canary route (100 %) unless the guard says no.
Environment:

- ``GRAYWSGI_TEST_STATE``: a state file path, or ``redis://...#key``;
- ``GRAYWSGI_TEST_FAIL_FLAG``: while this file exists the canary answers 500.
"""

from __future__ import annotations

import json
import os
import typing as t

from graywsgi import Extraction, Router, current
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import FileStateStore, StateStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def _state() -> StateStore:
    where = os.environ["GRAYWSGI_TEST_STATE"]
    if where.startswith("redis://"):
        from graywsgi.state.redis_store import RedisStateStore

        url, _, key = where.partition("#")
        # 0.5 s, not the default 50 ms: a loaded test machine must not turn
        # a slow answer into "keep the last state" and make the test flaky.
        return RedisStateStore(url, key=key, check_interval=0.05, timeout=0.5)
    return FileStateStore(where, check_interval=0.05)


def _answer(served_by: str, status: int, start_response: StartResponse) -> list[bytes]:
    body = json.dumps({"pid": os.getpid(), "served_by": served_by, "route": current.route}).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def stable(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return _answer("stable", 200, start_response)


def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    failing = os.path.exists(os.environ["GRAYWSGI_TEST_FAIL_FLAG"])
    return _answer("canary", 500 if failing else 200, start_response)


RULES = RuleSet(
    id="guarded",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 100),)),),
)

application = Extraction(
    Router(
        stable,
        RULES,
        apps={"canary": canary},
        guard=Guard(policy=BreakerPolicy(min_requests=10, error_rate=0.35, cooldown=300), state=_state()),
    )
)
