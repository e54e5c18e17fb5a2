"""
The training run of the profile-guided build
============================================

``setup.py`` builds the compiled fast path in two passes where the C
compiler is GCC (see :mod:`graywsgi.speedups` and docs/dependencies.md):
first with counters in every branch (``-fprofile-generate``), then -- after
this module has served a few thousand requests through those counting
modules -- again, laid out by what the counters saw (``-fprofile-use``). The
code a request runs ends up in fewer, denser cache lines, and the error
paths out of its way; what a request does is the same in both passes and in
plain Python.

Run as ``python -m graywsgi._training`` by the build; :func:`run` is what it
does, and the test suite checks that the requests it sends are served as
they should be on both paths. It opens no socket and starts no thread.
"""

from __future__ import annotations

import logging
import sys
import typing as t

from graywsgi.layers.extraction import Extraction
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.layers.split import CanarySplit
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["REQUESTS", "run"]

#: Requests :func:`run` serves by default: enough for every branch a request
#: takes to be counted many times over, in well under a second compiled.
REQUESTS = 6_000


def _hello(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _streamed(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"o"
    yield b"k"


def _failing(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"down"]


def stacks() -> dict[str, WSGIApplication]:
    """The stacks the training sends requests to, by name: the core chain
    (every request to a canary that answers, as the benchmark's), the same
    chain with a canary that fails now and then (the lossless retry), a
    streamed body, and Extraction with CanarySplit."""
    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    )
    return {
        "chain": Extraction(Router(_hello, rules, apps={"canary": _hello}, guard=Guard())),
        "retried": Extraction(Router(_hello, rules, apps={"canary": _failing}, guard=Guard())),
        "streamed": Extraction(Router(_streamed, rules, apps={"canary": _streamed}, guard=Guard())),
        "split": Extraction(CanarySplit(_hello, percent=20)),
    }


def environ_for(index: int) -> dict[str, t.Any]:
    """The ``index``-th training request: a GET with the gray headers a
    gateway sends, some with a request id or a ``traceparent`` of their own."""
    environ: dict[str, t.Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": f"/orders/{index % 97}",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_X_GRAY_ID": f"user-{index * 7919 % 100_003:08x}",
        "HTTP_X_ENV": "prod",
        "HTTP_X_VERSION": "1.5.0",
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if index % 4 == 0:
        environ["HTTP_X_REQUEST_ID"] = f"req-{index}"
    if index % 8 == 0:
        environ["HTTP_TRACEPARENT"] = f"00-{index + 1:032x}-{index + 1:016x}-01"
    return environ


def serve(app: WSGIApplication, environ: dict[str, t.Any]) -> tuple[str, bytes]:
    """One request through ``app``, as a server serves it; its status line and body."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
        status.append(line)
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return status[-1], body


def run(requests: int = REQUESTS) -> dict[str, int]:
    """Serve ``requests`` requests: nine in ten to the core chain, the rest
    spread over the other stacks; the number of ``200`` answers by stack."""
    apps = stacks()
    answered = dict.fromkeys(apps, 0)
    for index in range(requests):
        turn = index % 10
        name = "chain" if turn < 7 else ("streamed", "split", "retried")[turn - 7]
        line, _body = serve(apps[name], environ_for(index))
        if line.startswith("200 "):
            answered[name] += 1
    return answered


if __name__ == "__main__":  # pragma: no cover - the build runs it; tests call run()
    logging.getLogger("graywsgi").setLevel(logging.ERROR)  # the failing canary's breaker trips, by design
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS))
