"""The WSGI app the gunicorn tests serve: the gray chain over a rule file.

The rule file path comes from ``GRAYWSGI_TEST_RULES``; the store checks it
every 0.2 s.
"""

from __future__ import annotations

import json
import os
import typing as t

from graywsgi import Extraction, FileStore, Router, current

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def report(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    body = json.dumps(
        {"pid": os.getpid(), "route": current.route, "rules_version": current.rules_version}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = Extraction(
    Router(report, FileStore(os.environ["GRAYWSGI_TEST_RULES"], check_interval=0.2))
)
