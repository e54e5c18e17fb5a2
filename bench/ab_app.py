"""The applications ``bench/gunicorn_ab.py`` serves: a Flask hello-world, without and with the core chain.

``gunicorn ab_app:plain`` and ``gunicorn ab_app:chained`` (run with
``--chdir bench``). The core chain is the one ``bench/run.py`` measures in
process: Extraction + Router + Guard, every request to the canary route
(here the same Flask application), breaker closed, metrics off.

``reference`` and ``fused`` are the same Flask application behind the
issue's hand-written reference middleware and the hand-written fused floor
(``bench/gunicorn_ab.py --also``, ``bench/in_server_counts.py``).

``timed_*`` are the same Flask application behind each part of the chain
(and ``timed_reference``, ``timed_fused`` behind the hand-written middleware), timed
inside the worker, for ``bench/in_worker.py``.
"""

from __future__ import annotations

import json
import time
import typing as t

from flask import Flask
from fused_floor import FusedFloor  # bench/fused_floor.py
from reference import Reference  # bench/reference.py

from graywsgi import CanarySplit, Extraction, Router
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def hello() -> Flask:
    app = Flask("bench")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return "ok"

    @app.get("/")
    def index() -> str:
        return "ok"

    return app


plain = hello()
_rules = RuleSet(
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 100),)),),
)
_flask = hello()
chained = Extraction(Router(_flask, _rules, apps={"canary": _flask}, guard=Guard()))


# -- timed inside the worker (bench/in_worker.py) -------------------------------

TIMING_PATH = "/__timing"


class Timed:
    """Time each WSGI call inside the worker: the call, reading the body and
    closing it. ``GET /__timing`` answers the mean (µs) and the count since
    the previous ``/__timing`` request, as JSON, and starts over. For sync
    workers (one request at a time): the totals are not locked.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.total = 0.0
        self.count = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ.get("PATH_INFO") == TIMING_PATH:
            mean = self.total / self.count * 1e6 if self.count else None
            report = json.dumps({"mean_us": mean, "requests": self.count}).encode()
            self.total, self.count = 0.0, 0
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(report)))])
            return [report]
        started = time.perf_counter()
        iterable = self.app(environ, start_response)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        self.total += time.perf_counter() - started
        self.count += 1
        return [body]


def _behind(make: t.Callable[[WSGIApplication], WSGIApplication]) -> Timed:
    flask = hello()
    return Timed(make(flask))


timed_plain = _behind(lambda app: app)
timed_reference = _behind(Reference)
timed_fused = _behind(FusedFloor)
timed_extraction = _behind(Extraction)
timed_split = _behind(lambda app: Extraction(CanarySplit(app, percent=15)))
timed_router = _behind(lambda app: Extraction(Router(app, _rules, apps={"canary": app})))
timed_core_no_retry = _behind(
    lambda app: Extraction(Router(app, _rules, apps={"canary": app}, guard=Guard(retry_on_stable=False)))
)
timed_core = _behind(lambda app: Extraction(Router(app, _rules, apps={"canary": app}, guard=Guard())))


# -- hand-written middleware (bench/gunicorn_ab.py --also, bench/in_server_counts.py)

reference = Reference(hello())
fused = FusedFloor(hello())
