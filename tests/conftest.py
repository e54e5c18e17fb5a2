from __future__ import annotations

import typing as t

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from graywsgi.core.context import ENVIRON_KEY, GrayContext, get_current

# Apps served by real servers in the tests; importing them needs their
# environment (--doctest-modules would import every module here).
collect_ignore = ["apps"]

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class RecordingApp:
    """A WSGI app that records the context it saw and answers with its route.

    It checks that ``graywsgi.current`` and ``environ["graywsgi.context"]``
    agree, so every test that uses it checks that too.
    """

    def __init__(self, body: bytes = b"ok", status: int = 200) -> None:
        self.seen: list[GrayContext] = []
        self.environs: list[WSGIEnvironment] = []
        self.body = body
        self.status = status

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        context = get_current()
        assert context is not None, "no gray context bound inside the app"
        assert environ[ENVIRON_KEY] is context
        self.seen.append(context)
        self.environs.append(environ)
        request = Request(environ, shallow=True)
        response = Response(self.body, status=self.status)
        response.headers["X-Seen-Route"] = str(context.route)
        response.headers["X-Seen-Path"] = request.path
        return response(environ, start_response)

    @property
    def last(self) -> GrayContext:
        return self.seen[-1]


@pytest.fixture
def recording_app() -> RecordingApp:
    return RecordingApp()


class BufferedClient(Client):
    """werkzeug's test client, reading and closing every response at once.

    The plain client leaves a streamed response open until the test closes
    it, and graywsgi releases the context only on close (as PEP 3333 servers
    do), so tests use this one.
    """

    environ_base: dict[str, t.Any] | None = None  #: merged into every request's environ

    def open(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        kwargs.setdefault("buffered", True)
        if self.environ_base is not None:
            kwargs.setdefault("environ_base", self.environ_base)
        return super().open(*args, **kwargs)


@pytest.fixture(autouse=True)
def no_context_left_behind() -> t.Iterator[None]:
    """Every test must leave no gray context bound in the test thread."""
    assert get_current() is None, "a previous test leaked a gray context"
    yield
    assert get_current() is None, "this test left a gray context bound"
