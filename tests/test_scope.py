"""The one response wrapper per request that graywsgi's layers share."""

from __future__ import annotations

import gc
import typing as t
import weakref

import pytest
from werkzeug.test import create_environ

from graywsgi import Extraction, get_current
from graywsgi._closing import SCOPE_KEY, RequestScope
from graywsgi._outcome import observe
from graywsgi.context import GrayContext

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
