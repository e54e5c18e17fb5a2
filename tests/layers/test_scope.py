"""The one response wrapper per request that graywsgi's layers share."""

from __future__ import annotations

import gc
import typing as t
import weakref

import pytest
from werkzeug.test import create_environ

from graywsgi import Extraction, get_current
from graywsgi.layers.scope import SCOPE_KEY, RequestScope
from graywsgi.layers.outcome import observe
from graywsgi.core.context import GrayContext

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
    return lambda data: None


def test_the_outermost_layer_owns_the_scope_and_inner_layers_join_it() -> None:
    environ = create_environ("/")
    outer, owner = RequestScope.join(environ)
    inner, inner_owns = RequestScope.join(environ)
    assert owner and not inner_owns
    assert inner is outer and environ[SCOPE_KEY] is outer


def test_a_reused_environ_gets_a_fresh_scope() -> None:
    """Once the owner's call returned, the scope is not joinable (tests reuse environs)."""
    environ = create_environ("/")
    first, _ = RequestScope.join(environ)
    first.finish([b"x"])
    second, owner = RequestScope.join(environ)
    assert owner and second is not first


def test_callbacks_run_once_in_order_after_the_apps_close() -> None:
    events: list[str] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            events.append("app close")

    scope, _ = RequestScope.join(create_environ("/"))
    scope.on_close(lambda raised: events.append(f"inner raised={raised}"))
    scope.on_close(lambda raised: events.append(f"outer raised={raised}"))
    response = scope.finish(Body())
    assert response is scope
    assert list(response) == [b"x"]
    scope.close()
    scope.close()
    assert events == ["app close", "inner raised=False", "outer raised=False"]


def test_an_error_while_iterating_is_reported_to_every_callback() -> None:
    def body() -> t.Iterator[bytes]:
        yield b"a"
        raise OSError("disk gone")

    seen: list[bool] = []
    scope, _ = RequestScope.join(create_environ("/"))
    scope.on_close(seen.append)
    response = scope.finish(body())
    with pytest.raises(OSError):
        for _chunk in response:
            pass
    scope.close()
    assert seen == [True]


def test_a_failing_callback_does_not_stop_the_others() -> None:
    ran: list[str] = []

    def broken(raised: bool) -> None:
        raise RuntimeError("listener bug")

    scope, _ = RequestScope.join(create_environ("/"))
    scope.on_close(broken)
    scope.on_close(lambda raised: ran.append("second"))
    scope.finish([b"x"])
    with pytest.raises(RuntimeError, match="listener bug"):
        scope.close()
    assert ran == ["second"]


def test_abort_runs_the_callbacks_as_raised() -> None:
    seen: list[bool] = []
    scope, _ = RequestScope.join(create_environ("/"))
    scope.on_close(seen.append)
    scope.abort()
    scope.close()  # nothing more happens
    assert seen == [True]


def test_nothing_to_do_means_the_apps_own_iterable() -> None:
    def body() -> t.Iterator[bytes]:
        yield b"x"

    generator = body()
    scope, _ = RequestScope.join(create_environ("/"))
    assert scope.finish(generator) is generator  # no callback, no context to bind


def test_a_list_body_with_callbacks_is_iterated_directly() -> None:
    body = [b"a", b"b"]
    scope, _ = RequestScope.join(create_environ("/"))
    scope.on_close(lambda raised: None)
    response = scope.finish(body)
    assert response is scope
    assert type(iter(response)) is type(iter(body))  # no Python-level __next__ per chunk


def test_the_context_is_bound_only_while_the_request_runs_code() -> None:
    seen: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            context = get_current()
            seen.append(context.gray_id if context else None)
            yield b"x"

        return body()

    def watcher(raised: bool) -> None:
        context = get_current()
        seen.append(context.gray_id if context else None)

    def watched(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return observe(app, environ, start_response, lambda status, raised: watcher(raised))

    response = Extraction(watched)(create_environ("/", headers={"X-Gray-ID": "u-1"}), _start_response)
    assert isinstance(response, RequestScope)
    assert get_current() is None
    iterator = iter(response)
    assert next(iterator) == b"x"
    assert get_current() is None  # unbound between chunks
    assert next(iterator, None) is None
    response.close()
    assert seen == ["u-1", "u-1"]  # in the body, and in the close callback
    assert get_current() is None


def test_observe_outside_extraction_opens_its_own_scope() -> None:
    reports: list[tuple[int | None, bool]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("503 Service Unavailable", [])
        return [b"down"]

    response = observe(app, create_environ("/"), _start_response, lambda status, raised: reports.append((status, raised)))
    assert list(response) == [b"down"]
    assert reports == []
    t.cast(RequestScope, response).close()
    assert reports == [(503, False)]


def test_extraction_inside_an_observing_layer_joins_its_scope() -> None:
    """Metrics (outermost) opens the scope; Extraction below binds the context into it."""
    contexts: list[GrayContext | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    inner = Extraction(app)

    def outer(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return observe(inner, environ, start_response, lambda status, raised: contexts.append(get_current()))

    response = outer(create_environ("/", headers={"X-Gray-ID": "joined"}), _start_response)
    list(response)
    t.cast(RequestScope, response).close()
    assert [c.gray_id if c else None for c in contexts] == ["joined"]
    assert get_current() is None


def test_a_closed_response_leaves_no_reference_cycle() -> None:
    """The scope sits in the environ; callbacks that hold the environ (as
    Metrics' does) must not keep it alive once the response is closed."""

    class Marker:
        pass

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"x"

        return body()

    inner = Extraction(app)

    def watching(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return observe(inner, environ, start_response, lambda status, raised: environ.setdefault("seen", status))

    gc.disable()
    try:
        environ = create_environ("/", headers={"X-Gray-ID": "u"})
        marker = Marker()
        environ["test.marker"] = marker
        alive = weakref.ref(marker)
        del marker
        response = watching(environ, _start_response)
        assert list(response) == [b"x"]
        t.cast(RequestScope, response).close()
        assert environ["seen"] == 200
        del environ, response
        assert alive() is None  # freed by reference counting alone
    finally:
        gc.enable()


# -- layers with other middleware, or each other, in between ---------------


def test_nested_extraction_the_innermost_context_reaches_the_body() -> None:
    from graywsgi import Router
    from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet

    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    )

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        at_call = get_current()

        def body() -> t.Iterator[bytes]:
            now = get_current()
            yield f"{at_call.route if at_call else None}/{now.route if now else None}".encode()

        return body()

    response = Extraction(Extraction(Router(app, rules)))(create_environ("/", headers={"X-Gray-ID": "u"}), _start_response)
    assert b"".join(response) == b"canary/canary"
    t.cast(RequestScope, response).close()
    assert get_current() is None


def _buffering(app: t.Callable[..., t.Iterable[bytes]]) -> t.Callable[..., t.Iterable[bytes]]:
    """Ordinary middleware that reads the whole body itself (as compressing or ETag middleware do)."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        inner = app(environ, start_response)
        try:
            return [b"".join(inner)]
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    return middleware


def test_middleware_between_layers_reads_the_body_with_the_context_bound() -> None:
    reports: list[tuple[int | None, bool]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            context = get_current()
            yield f"gray_id={context.gray_id if context else None}".encode()

        return body()

    inner = _buffering(Extraction(app))

    def outer(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:  # Metrics' place
        return observe(inner, environ, start_response, lambda status, raised: reports.append((status, raised)))

    response = outer(create_environ("/", headers={"X-Gray-ID": "u1"}), _start_response)
    assert b"".join(response) == b"gray_id=u1"
    t.cast(RequestScope, response).close()
    assert reports == [(200, False)]
    assert get_current() is None


def test_an_error_in_a_body_read_by_middleware_between_layers_is_seen() -> None:
    reports: list[tuple[int | None, bool]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"a"
            raise OSError("disk gone")

        return body()

    def relay(app: t.Callable[..., t.Iterable[bytes]]) -> t.Callable[..., t.Iterable[bytes]]:
        def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
            inner = app(environ, start_response)

            def upper() -> t.Iterator[bytes]:
                try:
                    for chunk in inner:
                        yield chunk.upper()
                except OSError:
                    pass  # this middleware swallows it: only the tag can tell the layers
                finally:
                    getattr(inner, "close", lambda: None)()

            return upper()

        return middleware

    def observed(app: t.Callable[..., t.Iterable[bytes]]) -> t.Callable[..., t.Iterable[bytes]]:
        return lambda environ, start_response: observe(
            app, environ, start_response, lambda status, raised: reports.append((status, raised))
        )

    response = observed(relay(Extraction(app)))(create_environ("/"), _start_response)
    assert b"".join(response) == b"A"
    t.cast(RequestScope, response).close()
    assert reports == [(200, True)]


def test_a_failing_callback_during_abort_does_not_hide_the_apps_error(caplog: pytest.LogCaptureFixture) -> None:
    def ok(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return [b"x"]

    def failing_callback(status: int | None, raised: bool) -> None:
        raise RuntimeError("callback bug")

    def inner(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return observe(ok, environ, start_response, failing_callback)  # joins, registers the bad callback

    def middle(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        inner(environ, start_response)
        raise KeyError("the app's own error")  # after the layer inside registered

    seen: list[bool] = []
    with caplog.at_level("ERROR", logger="graywsgi"), pytest.raises(KeyError, match="the app's own error"):
        observe(middle, create_environ("/"), _start_response, lambda status, raised: seen.append(raised))
    assert seen == [True]
    assert "a response callback failed" in caplog.text


def test_a_late_error_status_reaches_a_server_whose_start_response_returns_none() -> None:
    """attempt() knows the status was passed on by a flag, not by the server's write()."""
    import sys

    from graywsgi.layers.outcome import attempt

    server_saw: list[tuple[str, bool]] = []

    def server_start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
        server_saw.append((status, exc_info is not None))  # some test servers return no write()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"a"
            try:
                raise KeyError("late")
            except KeyError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            yield b"b"

        return body()

    reports: list[tuple[int | None, bool]] = []
    outcome = attempt(app, create_environ("/"), t.cast(t.Any, server_start_response),
                      lambda status, raised: reports.append((status, raised)),
                      failed=lambda code: code is None or code >= 500)
    assert outcome.response is not None
    assert list(outcome.response) == [b"a", b"b"]
    t.cast(RequestScope, outcome.response).close()
    assert server_saw == [("200 OK", False), ("500 Internal Server Error", True)]
    assert reports == [(200, False)]  # what the client got
