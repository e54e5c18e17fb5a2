"""gunicorn configuration for a service behind graywsgi.

From the repository root:

    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app
    gunicorn -c examples/gunicorn.conf.py --pythonpath examples/django_project graysite.wsgi

Both sync and gthread workers are supported (``GUNICORN_WORKER_CLASS=gthread``
or ``--worker-class gthread --threads 4``). Command-line options and
``GUNICORN_CMD_ARGS`` override what is set here. docs/gunicorn.md explains
what graywsgi keeps per worker and what it shares.
"""

from __future__ import annotations

import os
import typing as t

from graywsgi.contrib import chain_of

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gunicorn's own default also reads WEB_CONCURRENCY.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# "sync": one request at a time per worker. "gthread": `threads` requests at
# a time per worker; graywsgi's stores, breakers and the gray context are
# thread-safe, and each request's context is its own.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
# More than one thread turns a sync worker into a gthread one: keep 1 for sync.
threads = int(os.environ.get("GUNICORN_THREADS", "4" if worker_class == "gthread" else "1"))

# preload_app: build the application once, in the master, before forking.
# graywsgi is safe to preload -- it starts no thread and opens no socket when
# it is built; Redis clients and upstream connection pools are made in the
# process that first uses them. What preloading buys: a broken rule file or
# setting stops the start once, with its file, line and key, instead of every
# worker failing to boot in turn; and workers share the loaded code's memory.
# What it costs: `kill -HUP` then re-forks workers from the same loaded code
# (new application code needs a restart), and anything *your* code opens at
# import time (database connections) is inherited by every worker -- open such
# things in post_fork below, or lazily. Set GUNICORN_PRELOAD=0 to turn it off.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"

graceful_timeout = 10
timeout = 30
keepalive = 5  # gthread keeps client connections alive; sync workers close them


def _gray_worker_ready(worker: t.Any, application: object) -> None:
    """Ready graywsgi in this worker: its own connections, the rules in force."""
    chain = chain_of(application)
    if chain is None:
        worker.log.warning("graywsgi: %r was not built by graywsgi.contrib; nothing to get ready", application)
        return
    summary = chain.after_fork()
    worker.log.info(
        "graywsgi worker %s ready: rules %s, kill switch %s",
        summary["pid"],
        summary["rules_version"] or "(percent split)",
        "SET" if summary["killed"] else "clear",
    )


def post_fork(server: t.Any, worker: t.Any) -> None:
    """In each new worker, right after the fork.

    The place for per-worker resources: with ``preload_app`` everything made
    at import time was made in the master, so re-create here what must not be
    shared between processes (database pools, statsd clients of your own).
    graywsgi needs nothing re-created -- its stores and pools notice the new
    process by themselves -- but with a preloaded app this is the earliest
    moment to open the worker's own store connections and log what it serves.
    """
    if server.cfg.preload_app:
        _gray_worker_ready(worker, worker.app.wsgi())


def post_worker_init(worker: t.Any) -> None:
    """After the worker loaded the application (every worker, both modes)."""
    if not worker.cfg.preload_app:
        _gray_worker_ready(worker, worker.wsgi)
