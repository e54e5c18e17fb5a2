"""The app of the real-gunicorn Prometheus test (tests/contrib/test_prometheus.py).

Served as ``tests.prometheus_app:application``; ``-c tests/prometheus_app.py``
makes the same file the gunicorn config, for its ``child_exit`` hook (the
app is built only when imported as a module, not when gunicorn reads it as
its config).
"""

from __future__ import annotations

import json
import os
import typing as t

from graywsgi.contrib.prometheus import child_exit

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["application", "child_exit", "CANARY_PERCENT"]

CANARY_PERCENT = 30


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    from graywsgi import current

    body = json.dumps({"pid": os.getpid(), "route": current.route}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                              ("X-Worker-Pid", str(os.getpid()))])
    return [body]


if __name__ != "__config__":  # gunicorn execs its config file as "__config__"
    from prometheus_client import CollectorRegistry

    from graywsgi import Extraction, Router
    from graywsgi.contrib.prometheus import PrometheusMetrics
    from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

    RULES = RuleSet(
        id="prom",
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="split", split=(Backend("canary", CANARY_PERCENT),)),),
    )
    # its own registry: pytest's --doctest-modules imports this module into the test process too, and
    # the default REGISTRY there must stay free (in multiprocess mode a scrape reads the files anyway)
    application = PrometheusMetrics(Extraction(Router(hello, RULES)), registry=CollectorRegistry())
