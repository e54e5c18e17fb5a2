"""graywsgi with Flask: a shop whose checkout has a new version on canary.

Run it from the repository root (after ``pip install -e ".[dev]"``)::

    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

or with Flask's development server::

    flask --app examples.flask_app run

Settings are ``app.config`` keys ``GRAYWSGI_*``. Besides the defaults below,
Flask's ``from_prefixed_env`` reads them from ``FLASK_``-prefixed
environment variables, values as JSON::

    FLASK_GRAYWSGI_RULES=examples/django_project/rules.yaml \\
    FLASK_GRAYWSGI_SIGNING_KEYS='{"gw": "s3cret"}' \\
        gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

What it serves (docs/flask.md walks through it):

- ``GET /`` -- JSON: which release served the request and why;
- ``GET /checkout`` -- the stable checkout, or for canary requests the new
  one from the ``checkout_v2`` blueprint (bound to canary, falling through);
- ``GET /v2/orders`` -- only for canary requests (404 for the others);
- ``POST /echo`` -- the body's length and SHA-256, to show it arrives intact;
- ``GET /page`` -- an HTML page whose template reads ``gray``.
"""

from __future__ import annotations

import hashlib
import os

from flask import Blueprint, Flask, Response, g, jsonify, render_template_string, request
from flask.typing import ResponseReturnValue

from graywsgi import current
from graywsgi.contrib.flask import GrayWSGI

gray = GrayWSGI()

# A canary-only API: other requests get the app's 404.
v2 = Blueprint("v2", __name__, url_prefix="/v2")
gray.route_blueprint(v2, "canary")

# The new checkout at the same URL as the old one: canary requests get it,
# everyone else falls through to the stable view.
checkout_v2 = Blueprint("checkout_v2", __name__)
gray.route_blueprint(checkout_v2, "canary", otherwise="fallthrough")


@v2.get("/orders")
def v2_orders() -> ResponseReturnValue:
    return jsonify(api="v2", route=current.route)


@checkout_v2.get("/checkout")
def new_checkout() -> ResponseReturnValue:
    return jsonify(checkout="new", route=current.route)


PAGE = """<!doctype html>
<title>Shop</title>
<p>Served by <b>{{ gray.route }}</b> (rules {{ gray.rules_version or "-" }}),
request {{ gray.request_id }}.</p>
"""


def create_app() -> Flask:
    """The example app; settings come from ``FLASK_GRAYWSGI_*`` variables."""
    app = Flask(__name__)
    # Requests from this machine count as coming from the gateway, so curl
    # can choose a route; a real service lists its gateways' networks.
    app.config["GRAYWSGI_TRUSTED_NETWORKS"] = ["127.0.0.1/32", "::1/128"]
    app.config.from_prefixed_env()
    if "GRAYWSGI_RULES" not in app.config:
        app.config.setdefault("GRAYWSGI_PERCENT", 15)

    @app.before_request
    def remember_route() -> None:
        g.route = current.route  # hooks see the gray context too

    @app.after_request
    def tag_response(response: Response) -> Response:
        response.headers["X-Served-Route"] = str(current.route)
        return response

    @app.get("/")
    def index() -> ResponseReturnValue:
        return jsonify(
            pid=os.getpid(),
            route=current.route,
            served_by="canary" if current.route == "canary" else "stable",
            reason=current.route_reason,
            rules_version=current.rules_version,
            gray_id=current.gray_id,
            trust=current.sources.get("gray_id"),
            hook_route=g.route,
        )

    @app.post("/echo")
    def echo() -> ResponseReturnValue:
        body = request.get_data()
        return jsonify(
            pid=os.getpid(),
            route=current.route,
            length=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            content_type=request.content_type,
        )

    @app.get("/page")
    def page() -> ResponseReturnValue:
        return render_template_string(PAGE)

    # The canary blueprint goes first: for canary requests its /checkout wins.
    app.register_blueprint(checkout_v2)

    @app.get("/checkout")
    def checkout() -> ResponseReturnValue:
        return jsonify(checkout="old", route=current.route)

    app.register_blueprint(v2)
    gray.init_app(app)
    return app


app = create_app()
