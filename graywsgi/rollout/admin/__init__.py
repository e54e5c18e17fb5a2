"""
Admin app
=========

A small WSGI application for the people running a gray release: where the
rollout stands, as JSON for scripts and as one HTML page for a person, and
the three buttons that matter -- roll back, resume, advance. Mount it
beside the service, behind a bearer token:

.. code-block:: python

    import os
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from graywsgi import Router
    from graywsgi.rollout.admin import AdminApp

    router = Router(app.wsgi_app, "rules.yaml", guard=guard)
    app.wsgi_app = DispatcherMiddleware(
        router, {"/_gray": AdminApp(router, token=os.environ.get("GRAYWSGI_ADMIN_TOKEN"))}
    )

The package, by part:

- :mod:`graywsgi.rollout.admin.app`: :class:`~graywsgi.rollout.admin.app.AdminApp`,
  the WSGI app -- routes, authentication, audit records, security headers;
- :mod:`graywsgi.rollout.admin.actions`: what roll back, resume and advance
  do, and the :class:`~graywsgi.rollout.admin.actions.RolloutControl`
  protocol of a rollout plan engine;
- :mod:`graywsgi.rollout.admin.status`: the status document (JSON) and the
  error-rate history behind the page's charts;
- :mod:`graywsgi.rollout.admin.page`: the HTML page
  (:func:`~graywsgi.rollout.admin.page.render_page`).

Every public name of those modules is importable from here.
"""

from __future__ import annotations

from graywsgi.rollout.admin.actions import RolloutControl
from graywsgi.rollout.admin.app import COOKIE_NAME, SESSION_SECONDS, AdminApp
from graywsgi.rollout.admin.page import render_page
from graywsgi.rollout.admin.status import HISTORY_SIZE

__all__ = ["COOKIE_NAME", "HISTORY_SIZE", "SESSION_SECONDS", "AdminApp", "RolloutControl", "render_page"]
