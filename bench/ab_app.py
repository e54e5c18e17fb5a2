"""The applications ``bench/gunicorn_ab.py`` serves: a Flask hello-world, without and with the core chain.

``gunicorn ab_app:plain`` and ``gunicorn ab_app:chained`` (run with
``--chdir bench``). The core chain is the one ``bench/run.py`` measures in
process: Extraction + Router + Guard, every request to the canary route
(here the same Flask application), breaker closed, metrics off.
"""

from __future__ import annotations

from flask import Flask

from graywsgi import Extraction, Router
from graywsgi.guard import Guard
from graywsgi.rules import Backend, Cluster, Rule, RuleSet


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
