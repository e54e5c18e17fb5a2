"""graywsgi.pipeline: stacked layers fuse into one call, and behave the same when they do not."""

from __future__ import annotations

import gc
import socket
import threading
import typing as t

import pytest
from werkzeug.test import create_environ
from werkzeug.wrappers import Response

from graywsgi import CanarySplit, Extraction, Metrics, Router, get_current
from graywsgi.layers.scope import SCOPE_KEY, RequestScope
from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

from tests.conftest import BufferedClient, RecordingApp

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

RULES = RuleSet(
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="half", split=(Backend("canary", 50),)),),
)
CANARY_ID, STABLE_ID = "user-1", "user-6"  # fnv1a_32 % 100: 0 and 81


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], None]:
    return lambda data: None


def consume(response: t.Iterable[bytes]) -> bytes:
    try:
        return b"".join(response)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()


# -- middleware of someone else's, to put between the layers ---------------------


def pass_through(app: WSGIApplication) -> WSGIApplication:
    """Calls the app, changes nothing."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return app(environ, start_response)

    return middleware


def buffering(app: WSGIApplication) -> WSGIApplication:
    """Reads and closes the body itself, hands up a list (as compressing or ETag middleware do)."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        inner = app(environ, start_response)
        try:
            return [b"".join(inner)]
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    return middleware


def header_adding(app: WSGIApplication) -> WSGIApplication:
    """Wraps start_response to add a header."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        def add(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
            return start_response(status, [*headers, ("X-Foreign", "yes")], exc_info)

        return app(environ, add)

    return middleware


def generator_relay(app: WSGIApplication) -> WSGIApplication:
    """Hands up a generator over the inner body (and closes it when done)."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        inner = app(environ, start_response)

        def relay() -> t.Iterator[bytes]:
            try:
                yield from inner
            finally:
                close = getattr(inner, "close", None)
                if close is not None:
                    close()

        return relay()

    return middleware


FOREIGN = [
    pytest.param(None, id="fused, nothing between"),
    pytest.param(pass_through, id="a pass-through between"),
    pytest.param(buffering, id="a buffering middleware between"),
    pytest.param(header_adding, id="a start_response wrapper between"),
    pytest.param(generator_relay, id="a generator relay between"),
]


def stack(app: WSGIApplication, between: t.Callable[[WSGIApplication], WSGIApplication] | None,
          guard: Guard | None = None) -> WSGIApplication:
    """Extraction(Router(app)), with ``between`` (if any) between the two layers."""
    router = Router(app, RULES, guard=guard)
    return Extraction(between(router) if between is not None else router)


# -- fusion at construction -----------------------------------------------------


def test_stacked_layers_fuse_into_one_pipeline() -> None:
    app = RecordingApp()
    router = Router(app, RULES, guard=Guard())
    extraction = Extraction(router)
    metrics = Metrics(extraction)
    assert extraction._decision is router._step and extraction._extraction is extraction._step
    assert metrics._metrics is metrics._step and metrics._extraction is extraction._step
    assert metrics._decision is router._step
    assert metrics._innermost is router


def test_foreign_middleware_between_keeps_two_pipelines() -> None:
    router = Router(RecordingApp(), RULES)
    extraction = Extraction(pass_through(router))
    assert extraction._decision is None and extraction._innermost is extraction
    assert router._decision is router._step


@pytest.mark.parametrize(
    ("build", "adopted"),
    [
        pytest.param(lambda app: Extraction(Extraction(app)), 1, id="two Extractions"),
        pytest.param(lambda app: Extraction(Metrics(app, port=9)), 1, id="Metrics inside Extraction"),
        pytest.param(lambda app: Extraction(CanarySplit(Router(app, RULES))), 2, id="two decision layers"),
    ],
)
def test_a_layer_whose_step_does_not_come_later_is_called_as_an_app(build: t.Callable[..., t.Any],
                                                                      adopted: int) -> None:
    seen: list[GrayContext] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(environ[ENVIRON_KEY])
        return Response("ok")(environ, start_response)

    outer = build(app)
    try:
        # The layers adopted end where the next one's step would not come later.
        layer, count = outer, 1
        while layer is not outer._innermost:
            layer, count = layer._app, count + 1
        assert count == adopted
        assert BufferedClient(outer).get("/", headers={"X-Gray-ID": CANARY_ID}).status_code == 200
        assert len(seen) == 1 and seen[0].gray_id == CANARY_ID
    finally:
        inner = outer._app
        if isinstance(inner, Metrics):
            inner.sink.close()


def test_one_object_is_the_start_response_the_body_and_the_scope() -> None:
    seen: dict[str, object] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen["start_response"] = start_response
        seen["scope"] = environ[SCOPE_KEY]
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"x"

        return body()

    response = Extraction(Router(app, RULES, guard=Guard()))(
        create_environ("/", headers={"X-Gray-ID": CANARY_ID}), _start_response
    )
    assert isinstance(response, RequestScope)
    assert seen["start_response"] is response and seen["scope"] is response
    assert consume(response) == b"x"


def test_a_list_body_with_nothing_at_the_end_is_handed_back_as_it_is() -> None:
    body = [b"ok"]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return body

    response = Extraction(Router(app, RULES))(create_environ("/"), _start_response)  # no guard, no metrics
    assert response is body


def test_setting_app_fuses_the_layer_and_what_adopted_it_anew() -> None:
    first, second = RecordingApp(b"first"), RecordingApp(b"second")
    router = Router(first, RULES)
    client = BufferedClient(Extraction(router))
    assert client.get("/").data == b"first"
    router.app = second
    assert client.get("/").data == b"second"
    router.app = pass_through(second)
    assert client.get("/").data == b"second" and second.last.route is not None


# -- the same outcomes, fused or not ------------------------------------------------


@pytest.mark.parametrize("between", FOREIGN)
def test_same_route_context_and_release_with_or_without_middleware_between(
    between: t.Callable[[WSGIApplication], WSGIApplication] | None,
) -> None:
    app = RecordingApp()
    client = BufferedClient(stack(app, between))
    for gray_id, route, reason in ((CANARY_ID, "canary", "weight"), (STABLE_ID, "stable", "default")):
        response = client.get("/", headers={"X-Gray-ID": gray_id})
        assert response.status_code == 200 and response.headers["X-Seen-Route"] == route
        assert (app.last.gray_id, app.last.route, app.last.route_reason) == (gray_id, route, reason)
        assert get_current() is None  # released when the response closed


@pytest.mark.parametrize("between", FOREIGN)
def test_the_guard_counts_every_outcome_once_with_or_without_middleware_between(
    between: t.Callable[[WSGIApplication], WSGIApplication] | None,
) -> None:
    statuses = iter([200, 503, 200, 500, 404])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response("x", status=next(statuses))(environ, start_response)

    guard = Guard(retry_on_stable=False)
    client = BufferedClient(stack(app, between, guard))
    got = [client.get("/", headers={"X-Gray-ID": CANARY_ID}).status_code for _ in range(5)]
    assert got == [200, 503, 200, 500, 404]
    totals = guard.breaker("canary").window.totals()
    assert (totals.requests, totals.errors) == (5, 2)


@pytest.mark.parametrize("between", FOREIGN)
def test_a_failing_canary_is_served_by_stable_with_or_without_middleware_between(
    between: t.Callable[[WSGIApplication], WSGIApplication] | None,
) -> None:
    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise RuntimeError("canary broke")

    def stable(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response(f"stable saw {environ[ENVIRON_KEY].route_reason}")(environ, start_response)

    guard = Guard()
    router = Router(stable, RULES, apps={"canary": canary}, guard=guard)
    client = BufferedClient(Extraction(between(router) if between is not None else router))
    response = client.get("/", headers={"X-Gray-ID": CANARY_ID})
    assert response.status_code == 200 and response.data == b"stable saw retried on the default cluster"
    assert guard.breaker("canary").window.totals().errors == 1


@pytest.mark.parametrize("between", FOREIGN)
def test_an_error_in_the_body_is_an_error_with_or_without_middleware_between(
    between: t.Callable[[WSGIApplication], WSGIApplication] | None,
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"a"
            raise OSError("disk gone")

        return body()

    guard = Guard(retry_on_stable=False)
    wrapped = stack(app, between, guard)
    with pytest.raises(OSError, match="disk gone"):  # while the body is read: by the server, or the middleware
        consume(wrapped(create_environ("/", headers={"X-Gray-ID": CANARY_ID}), _start_response))
    assert guard.breaker("canary").window.totals().errors == 1
    assert get_current() is None


@pytest.mark.parametrize("between", FOREIGN)
def test_the_context_is_bound_in_the_body_and_its_close_with_or_without_middleware_between(
    between: t.Callable[[WSGIApplication], WSGIApplication] | None,
) -> None:
    seen: list[str | None] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            context = get_current()
            seen.append(context.route if context else None)
            yield b"x"

        def close(self) -> None:
            context = get_current()
            seen.append(context.route if context else None)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    response = stack(app, between, Guard())(create_environ("/", headers={"X-Gray-ID": CANARY_ID}), _start_response)
    assert get_current() is None  # unbound between the server's steps
    assert consume(response) == b"x"
    assert seen == ["canary", "canary"]
    assert get_current() is None


def test_metrics_sees_the_same_request_with_or_without_middleware_between() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2.0)
    try:
        datagrams = []
        for between in (None, pass_through, buffering):
            metrics = Metrics(stack(RecordingApp(), between), port=server.getsockname()[1], tag_style="dogstatsd",
                              trace_sample_rate=0)
            try:
                BufferedClient(metrics).get("/", headers={"X-Gray-ID": CANARY_ID})
                datagrams.append(server.recv(65535).decode("ascii"))
            finally:
                metrics.sink.close()
    finally:
        server.close()
    timers = [datagram.split("\n")[0] for datagram in datagrams]
    decisions = [datagram.split("\n")[1] for datagram in datagrams]
    assert len({timer.split(":", 1)[0] + "|" + timer.split("|", 2)[2] for timer in timers}) == 1  # same tags
    assert decisions == ["graywsgi.decision:1|c|#route:canary,group:none,reason:weight,rule:half"] * 3


# -- threads and the collector ------------------------------------------------------


def test_threads_see_their_own_context_and_every_outcome_is_counted() -> None:
    guard = Guard(retry_on_stable=False)
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        expected = environ["HTTP_X_GRAY_ID"]

        def body() -> t.Iterator[bytes]:
            context = get_current()
            with lock:
                seen.append((expected, context.gray_id if context else "none"))
            yield b"x"

        return body()

    chain = Extraction(Router(app, RuleSet(clusters={"stable": Cluster(), "canary": Cluster()},
                                           rules=(Rule(name="all", split=(Backend("canary", 100),)),)),
                              guard=guard))
    per_thread = 300

    def hammer(index: int) -> None:
        for n in range(per_thread):
            consume(chain(create_environ("/", headers={"X-Gray-ID": f"user-{index}-{n}"}), _start_response))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == 16 * per_thread
    assert all(expected == got for expected, got in seen)
    assert guard.breaker("canary").window.totals().requests == 16 * per_thread


@pytest.mark.parametrize("body", [pytest.param([b"ok"], id="list body"), pytest.param(None, id="generator body")])
def test_a_request_leaves_nothing_for_the_garbage_collector(body: list[bytes] | None) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return body if body is not None else iter([b"ok"])

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    guard = Guard()
    chain = Metrics(Extraction(Router(app, RULES, guard=guard)), port=server.getsockname()[1])
    environ = create_environ("/", headers={"X-Gray-ID": CANARY_ID, "X-Request-ID": "r-1"})
    try:
        consume(chain(dict(environ), _start_response))  # warm: caches, the socket
        gc.collect()
        gc.disable()
        try:
            for _ in range(200):
                consume(chain(dict(environ), _start_response))
            assert gc.collect() == 0  # everything went with reference counting
        finally:
            gc.enable()
    finally:
        chain.sink.close()
        server.close()
