"""graywsgi as a gray gateway in front of two deployments (proxy mode).

    gunicorn -c examples/gunicorn.conf.py examples.gateway.gateway:application

The rule file is ``examples/gateway/rules.yaml`` unless ``GRAYWSGI_GATEWAY_RULES``
names another; trusted gateways/load balancers in front of it are listed in
``GRAYWSGI_TRUSTED_NETWORKS`` (comma-separated; default 127.0.0.1/32).
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from graywsgi.contrib import build_chain
from graywsgi.errors import problem_response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RULES = os.environ.get("GRAYWSGI_GATEWAY_RULES", str(Path(__file__).resolve().parent / "rules.yaml"))
NETWORKS = [n.strip() for n in os.environ.get("GRAYWSGI_TRUSTED_NETWORKS", "127.0.0.1/32").split(",") if n.strip()]


def no_upstream(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """Serves a route whose cluster has no upstream: a configuration slip."""
    return problem_response(start_response, 502, "No upstream is configured for this route.")


# build_chain: Extraction (with the trust boundary) around the Router, the
# same chain the Flask and Django integrations build, so the gunicorn hooks in
# examples/gunicorn.conf.py find it.
application = build_chain(
    no_upstream,
    {"RULES": RULES, "RULES_CHECK_INTERVAL": 1.0, "TRUSTED_NETWORKS": NETWORKS},
    key=lambda name: f"GRAYWSGI_{name}",
)
