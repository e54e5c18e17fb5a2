"""
Demo
====

``graywsgi demo`` serves a small Flask application with a stable and a
canary handler behind the gray chain (:class:`~graywsgi.layers.extraction.Extraction` then
:class:`~graywsgi.layers.split.CanarySplit`) on 127.0.0.1, and prints ``curl`` lines that
show a request going to stable, going to canary by gray id, and going to
canary by colour.

The application is also importable, to try the chain in a Python shell::

    >>> from graywsgi.cli.demo import create_app
    >>> client = create_app(percent=15).test_client()
    >>> client.get("/", headers={"X-Traffic-Color": "canary"}).json["served_by"]
    'canary'
"""

from __future__ import annotations

import sys
import typing as t

from graywsgi.core.context import current
from graywsgi.layers.extraction import Extraction
from graywsgi.core.hashing import fnv1a_32
from graywsgi.layers.split import CANARY, CanarySplit

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = ["create_app", "sample_ids", "serve"]

HOST = "127.0.0.1"


def create_app(percent: float = 15.0) -> Flask:
    """Build the demo Flask app with ``percent`` % of users on canary."""
    from flask import Flask, jsonify
    from flask.typing import ResponseReturnValue

    app = Flask("graywsgi.demo")

    def stable_handler() -> dict[str, object]:
        return {"served_by": "stable", "release": "1.4.2", "greeting": "Hello"}

    def canary_handler() -> dict[str, object]:
        return {"served_by": "canary", "release": "1.5.0-rc.1", "greeting": "Hello, new world"}

    @app.get("/")
    def index() -> ResponseReturnValue:
        body = canary_handler() if current.route == CANARY else stable_handler()
        body.update(
            gray_id=current.gray_id,
            traffic_color=current.traffic_color,
            request_id=current.request_id,
            degrade_level=current.degrade_level.name,
        )
        return jsonify(body)

    app.wsgi_app = Extraction(CanarySplit(app.wsgi_app, percent=percent))  # type: ignore[method-assign]
    return app


def sample_ids(percent: float) -> tuple[str | None, str | None]:
    """Return a gray id that lands on canary and one that lands on stable.

    Either is ``None`` when ``percent`` leaves no such user (0 or 100).
    """
    canary_id = stable_id = None
    for n in range(1, 10_000):
        candidate = f"user-{n}"
        on_canary = fnv1a_32(candidate) % 100 < percent
        if on_canary and canary_id is None:
            canary_id = candidate
        if not on_canary and stable_id is None:
            stable_id = candidate
        if canary_id and stable_id:
            break
    return canary_id, stable_id


def serve(port: int = 8000, percent: float = 15.0, out: t.TextIO = sys.stdout) -> int:
    """Serve the demo on 127.0.0.1 until interrupted. Returns an exit code."""
    try:
        app = create_app(percent)
    except ImportError:
        print("graywsgi demo needs Flask: pip install 'graywsgi[flask]'", file=sys.stderr)
        return 1
    import socket

    from werkzeug.serving import make_server

    # Bind here rather than in make_server, which prints its own message and
    # exits when the port is taken.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        print(
            f"graywsgi demo: cannot listen on {HOST}:{port}: {exc.strerror or exc}; "
            "pass --port with a free port (--port 0 picks one)",
            file=sys.stderr,
        )
        return 1
    server = make_server(HOST, port, app, threaded=True, fd=sock.fileno())
    url = f"http://{HOST}:{server.port}/"
    canary_id, stable_id = sample_ids(percent)
    lines = [
        f"graywsgi demo: {percent:g}% of users on canary, serving {url} (Ctrl-C stops)",
        "",
        "# goes to stable (no gray id):",
        f"curl -s {url}",
    ]
    if stable_id:
        lines += [f"# goes to stable (gray id {stable_id} hashes outside the canary share):",
                  f"curl -s -H 'X-Gray-ID: {stable_id}' {url}"]
    if canary_id:
        lines += [f"# goes to canary by gray id ({canary_id} hashes into the canary share):",
                  f"curl -s -H 'X-Gray-ID: {canary_id}' {url}"]
    lines += ["# goes to canary by colour:", f"curl -s -H 'X-Traffic-Color: canary' {url}", ""]
    print("\n".join(lines), file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sock.close()
    return 0
