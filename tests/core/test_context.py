from __future__ import annotations

import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.test import create_environ
from werkzeug.wrappers import Response

import graywsgi
from graywsgi import Extraction, carry_context, current, get_current
from tests.conftest import BufferedClient
from graywsgi.core.context import ENVIRON_KEY, DegradeLevel, GrayContext, Source

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def test_context_is_immutable() -> None:
    ctx = GrayContext(request_id="r", gray_id="u")
    with pytest.raises(AttributeError):
        ctx.route = "canary"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.sources["gray_id"] = Source.TRUSTED  # type: ignore[index]


def test_evolve_returns_a_copy() -> None:
    ctx = GrayContext(request_id="r")
    routed = ctx.evolve(route="canary")
    assert (ctx.route, routed.route) == (None, "canary")
    assert routed.request_id == "r"


def test_is_fallback_from_degrade_level() -> None:
    assert not GrayContext(request_id="r", degrade_level=DegradeLevel.L1).is_fallback
    assert GrayContext(request_id="r", degrade_level=DegradeLevel.L2).is_fallback
    assert GrayContext(request_id="r", degrade_level=DegradeLevel.L3).is_fallback


def test_current_outside_a_request_is_unbound() -> None:
    assert get_current() is None
    with pytest.raises(RuntimeError, match="only available while a request"):
        current.gray_id


def test_current_is_read_only() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        with pytest.raises(AttributeError):
            current.route = "canary"  # type: ignore[misc]
        return Response(str(current.gray_id))(environ, start_response)

    assert BufferedClient(Extraction(app)).get("/", headers={"X-Gray-ID": "u1"}).text == "u1"


def test_bound_in_environ_and_current() -> None:
    seen: list[tuple[object, object]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append((environ[ENVIRON_KEY], get_current()))
        return Response("x")(environ, start_response)

    BufferedClient(Extraction(app)).get("/", headers={"X-Gray-ID": "u1"})
    (in_environ, in_current), = seen
    assert in_environ is in_current
    assert isinstance(in_environ, GrayContext) and in_environ.gray_id == "u1"
    assert get_current() is None


class Lifecycle:
    """Drive a WSGI app as a PEP 3333 server does, recording context state."""

    def __init__(self) -> None:
        self.during_body: list[str | None] = []

    def body(self) -> t.Iterator[bytes]:
        for n in range(3):
            ctx = get_current()
            self.during_body.append(ctx.gray_id if ctx else None)
            yield b"chunk%d" % n


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
    return lambda data: None


def test_streaming_body_sees_context_until_close() -> None:
    life = Lifecycle()
    closed_with: list[str | None] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            return life.body()

        def close(self) -> None:
            ctx = get_current()
            closed_with.append(ctx.gray_id if ctx else None)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    environ = create_environ("/", headers={"X-Gray-ID": "stream-user"})
    result = Extraction(app)(environ, _start_response)
    assert get_current() is None  # the server's own context never sees it
    assert b"".join(result) == b"chunk0chunk1chunk2"
    assert life.during_body == ["stream-user"] * 3
    result.close()  # type: ignore[attr-defined]
    assert closed_with == ["stream-user"]  # the app's cleanup still sees it
    assert get_current() is None


def test_closed_on_another_thread() -> None:
    """A server may iterate and close a response on a thread of its own."""
    seen: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            ctx = get_current()
            seen.append(ctx.gray_id if ctx else None)
            yield b"x"

        return body()

    result = Extraction(app)(create_environ("/", headers={"X-Gray-ID": "t-user"}), _start_response)
    leftovers: list[object] = []

    def finish() -> None:
        list(result)
        result.close()  # type: ignore[attr-defined]
        leftovers.append(get_current())

    thread = threading.Thread(target=finish)
    thread.start()
    thread.join(timeout=10)
    assert seen == ["t-user"]
    assert leftovers == [None]
    assert get_current() is None


def test_interleaved_responses_on_one_thread() -> None:
    """Event-loop servers iterate several bodies in turn on one thread."""
    seen: list[tuple[str, str | None]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        me = environ["HTTP_X_GRAY_ID"]

        def body() -> t.Iterator[bytes]:
            for _ in range(3):
                ctx = get_current()
                seen.append((me, ctx.gray_id if ctx else None))
                yield b"."

        return body()

    a = iter(Extraction(app)(create_environ("/", headers={"X-Gray-ID": "alice"}), _start_response))
    b = iter(Extraction(app)(create_environ("/", headers={"X-Gray-ID": "bob"}), _start_response))
    for _ in range(3):
        next(a)
        next(b)
    a.close()  # type: ignore[attr-defined]
    next(b, None)
    b.close()  # type: ignore[attr-defined]
    assert seen and all(me == saw for me, saw in seen), seen
    assert get_current() is None


def test_closed_exactly_once_and_released() -> None:
    closes: list[str | None] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            ctx = get_current()
            closes.append(ctx.gray_id if ctx else None)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    result = Extraction(app)(create_environ("/", headers={"X-Gray-ID": "once"}), _start_response)
    assert get_current() is None
    assert list(result) == [b"x"]
    result.close()  # type: ignore[attr-defined]
    result.close()  # type: ignore[attr-defined]
    assert closes == ["once"]
    assert get_current() is None


def test_a_list_body_is_handed_back_unwrapped() -> None:
    """Iterating a list runs no code: nothing to bind, nothing to close."""
    body = [b"x"]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        assert current.gray_id == "listed"
        return body

    result = Extraction(app)(create_environ("/", headers={"X-Gray-ID": "listed"}), _start_response)
    assert result is body
    assert get_current() is None


def test_released_when_app_raises_before_returning() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        assert get_current() is not None
        raise KeyError("boom")

    with pytest.raises(KeyError):
        Extraction(app)(create_environ("/"), _start_response)
    assert get_current() is None


def test_released_when_body_raises_and_server_closes() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            yield b"first"
            raise OSError("disk gone")

        def close(self) -> None:
            # The app's own cleanup still sees the context.
            closed.append(get_current() is not None)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    result = Extraction(app)(create_environ("/"), _start_response)
    with pytest.raises(OSError):
        try:
            for _ in result:
                pass
        finally:
            result.close()  # type: ignore[attr-defined]
    assert closed == [True]
    assert get_current() is None


def test_werkzeug_client_closes_and_releases_after_error_in_body() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])

        def body() -> t.Iterator[bytes]:
            yield b"a"
            raise ValueError("mid-stream")

        return body()

    with pytest.raises(ValueError):
        BufferedClient(Extraction(app)).get("/", buffered=True)
    assert get_current() is None


def test_carry_context_into_a_thread() -> None:
    results: list[object] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        def work(suffix: str) -> str:
            return f"{current.gray_id}{suffix}"

        plain = threading.Thread(target=lambda: results.append(get_current()))
        plain.start()
        plain.join()
        with ThreadPoolExecutor(max_workers=1) as pool:
            results.append(pool.submit(carry_context(work), "!").result())
        return Response("x")(environ, start_response)

    BufferedClient(Extraction(app)).get("/", headers={"X-Gray-ID": "thread-user"})
    assert results == [None, "thread-user!"]


def test_no_context_leaks_across_requests_or_threads() -> None:
    """Many threads, many requests: each app call sees only its own ids."""
    mismatches: list[str] = []
    lock = threading.Lock()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        expected = environ["HTTP_X_GRAY_ID"]

        def body() -> t.Iterator[bytes]:
            for _ in range(3):
                if current.gray_id != expected or current.request_id != environ["HTTP_X_REQUEST_ID"]:
                    with lock:
                        mismatches.append(expected)
                yield b"."

        start_response("200 OK", [])
        return body()

    wrapped = graywsgi.Extraction(graywsgi.CanarySplit(app, percent=50))
    threads_n, per_thread = 16, 150
    barrier = threading.Barrier(threads_n)
    leftovers: list[object] = []

    def worker(n: int) -> None:
        client = BufferedClient(wrapped)
        barrier.wait()
        for i in range(per_thread):
            rid = f"req-{n}-{i}"
            response = client.get("/", headers={"X-Gray-ID": f"user-{n}-{i}", "X-Request-ID": rid})
            assert response.data == b"..."
            if get_current() is not None:
                leftovers.append(get_current())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert mismatches == []
    assert leftovers == []
