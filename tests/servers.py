"""Real HTTP servers for tests: werkzeug's, on free 127.0.0.1 ports, each in a thread of its own."""

from __future__ import annotations

import contextlib
import threading
import typing as t

from werkzeug.serving import make_server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@contextlib.contextmanager
def serving(apps: t.Mapping[str, WSGIApplication], *, threaded: bool = True) -> t.Iterator[dict[str, int]]:
    """Serve each of ``apps`` on a free 127.0.0.1 port; yield name -> port.
    Every server is shut down and closed on the way out, whatever happened."""
    servers = {name: make_server("127.0.0.1", 0, app, threaded=threaded) for name, app in apps.items()}
    threads = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for server in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield {name: server.port for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)
