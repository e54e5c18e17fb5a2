"""The *fused floor*: lean, hand-written pure Python doing a subset of the
core chain's work, for ``bench/run.py``. Not part of graywsgi.

One class, one ``__call__``, no layers. Per request it:

1. reads ``X-Gray-ID``, ``X-Env``, ``X-Version``, ``X-Request-ID`` and
   ``traceparent`` from the environ and checks each with one compiled
   regular expression (visible ASCII, at most 256 characters; the W3C form
   for ``traceparent``), dropping a malformed value as Extraction does --
   a simpler rule than Extraction's, at about the same cost;
2. splits by the gray id's cached FNV-1a bucket (the same rule as
   :class:`graywsgi.CanarySplit`) and writes ``HTTP_X_ROUTE_TO``;
3. binds a context (a tuple) in a context variable around the application
   call, and around each ``next()`` and the ``close()`` of a body that is not
   a list;
4. counts the request, and whether it failed (a 5xx, no status, or an
   exception from the app or its body), in a ring of one-second buckets
   under a lock when the response is closed.

It does less than graywsgi's core chain: no query fallback, no rules, no
kill switch or shared state, no breaker state machine, no latency window,
no retry on stable, no problem+json answers. It is written plainly, not
tuned to the last nanosecond; what it costs over the bare callable shows
what this much of the work costs in Python on the machine that runs the
benchmark.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
import typing as t

from graywsgi.core.hashing import cached_fnv1a_32

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FUSED_CONTEXT: contextvars.ContextVar[tuple[str | None, ...]] = contextvars.ContextVar("bench_fused_context")

_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class BucketRing:
    """Requests and errors per one-second bucket over the last ``size`` seconds."""

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.seconds = [-1] * size
        self.requests = [0] * size
        self.errors = [0] * size

    def count(self, error: bool) -> None:
        now = int(time.monotonic())
        slot = now % self.size
        lock = self.lock
        lock.acquire()  # cheaper than ``with`` on this path, as in graywsgi's window
        try:
            if self.seconds[slot] != now:
                self.seconds[slot] = now
                self.requests[slot] = self.errors[slot] = 0
            self.requests[slot] += 1
            if error:
                self.errors[slot] += 1
        finally:
            lock.release()

    def totals(self) -> tuple[int, int]:
        """(requests, errors) over the ring."""
        oldest = int(time.monotonic()) - self.size
        with self.lock:
            live = [i for i, second in enumerate(self.seconds) if second > oldest]
            return sum(self.requests[i] for i in live), sum(self.errors[i] for i in live)


class _Body:
    """The response: binds the context while a non-list body runs, counts at close."""

    __slots__ = ("iterable", "context", "status", "ring", "raised", "closed")

    def __init__(self, iterable: t.Iterable[bytes], context: tuple[str | None, ...],
                 status: list[str | None], ring: BucketRing) -> None:
        self.iterable = iterable
        self.context = context
        self.status = status
        self.ring = ring
        self.raised = False
        self.closed = False

    def __iter__(self) -> t.Iterator[bytes]:
        if self.iterable.__class__ is list:
            return iter(self.iterable)
        return self._bound()

    def _bound(self) -> t.Iterator[bytes]:
        iterator = iter(self.iterable)
        while True:
            token = FUSED_CONTEXT.set(self.context)
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except BaseException:
                self.raised = True
                raise
            finally:
                FUSED_CONTEXT.reset(token)
            yield chunk

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        token = FUSED_CONTEXT.set(self.context)
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()
        finally:
            FUSED_CONTEXT.reset(token)
            line = self.status[0]
            self.ring.count(self.raised or line is None or line[:1] == "5")


class FusedFloor:
    """Check five gray headers, split ``percent`` % to canary, bind a context, count at close."""

    def __init__(self, app: WSGIApplication, percent: int = 15) -> None:
        self.app = app
        self.percent = percent
        self.ring = BucketRing()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        get = environ.get
        gray_id = get("HTTP_X_GRAY_ID")
        env = get("HTTP_X_ENV")
        version = get("HTTP_X_VERSION")
        request_id = get("HTTP_X_REQUEST_ID")
        traceparent = get("HTTP_TRACEPARENT")
        # Unrolled rather than a loop over the five: lean code, as a floor should be.
        if gray_id is not None and _TOKEN.fullmatch(gray_id) is None:
            gray_id = None
        if env is not None and _TOKEN.fullmatch(env) is None:
            env = None
        if version is not None and _TOKEN.fullmatch(version) is None:
            version = None
        if request_id is not None and _TOKEN.fullmatch(request_id) is None:
            request_id = None
        if traceparent is not None and _TRACEPARENT.fullmatch(traceparent) is None:
            traceparent = None
        canary = False  # no gray id: never canary
        if gray_id:
            canary = cached_fnv1a_32(gray_id.encode("latin-1")) % 100 < self.percent
        route = environ["HTTP_X_ROUTE_TO"] = "canary" if canary else "stable"
        context = (gray_id, env, version, request_id, traceparent, route)
        status: list[str | None] = [None]

        def capture(line: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
            status[0] = line
            return start_response(line, headers, exc_info)

        token = FUSED_CONTEXT.set(context)
        try:
            iterable = self.app(environ, capture)
        except BaseException:
            self.ring.count(True)
            raise
        finally:
            FUSED_CONTEXT.reset(token)
        return _Body(iterable, context, status, self.ring)
