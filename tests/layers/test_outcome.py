"""graywsgi._outcome.attempt: a status held back until it is known, committed or given up."""

from __future__ import annotations

import sys
import typing as t

import pytest

from graywsgi.layers.scope import RequestScope
from graywsgi.layers.outcome import attempt, observe

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Server:
    """What the server saw: start_response calls and write() data."""

    def __init__(self) -> None:
        self.started: list[tuple[str, bool]] = []  # (status, exc_info given)
        self.written: list[bytes] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: headers already sent
        self.started.append((status, exc_info is not None))
        return self.written.append


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[int | None, bool]] = []

    def __call__(self, status: int | None, raised: bool) -> None:
        self.seen.append((status, raised))


class Body:
    """A response iterable that records whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> t.Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def is_5xx(status: int | None) -> bool:
    return status is None or status >= 500


def consume(iterable: t.Iterable[bytes]) -> bytes:
    try:
        return b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()


def test_a_good_status_is_passed_on_and_reported_at_close() -> None:
    server, reports, body = Server(), Reports(), Body([b"ok"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    outcome = attempt(app, {}, server.start_response, reports, failed=is_5xx)
    assert outcome.response is not None and outcome.status == 200 and not outcome.raised
    assert server.started == [("200 OK", False)]
    assert reports.seen == []  # not before the response is closed
    assert consume(outcome.response) == b"ok"
    assert body.closed and reports.seen == [(200, False)]


def test_a_failed_status_never_reaches_the_server_and_the_body_is_closed() -> None:
    server, reports, body = Server(), Reports(), Body([b"down"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("503 Service Unavailable", [])
        return body

    outcome = attempt(app, {}, server.start_response, reports, failed=is_5xx)
    assert outcome == (None, 503, False)
    assert server.started == [] and body.closed and reports.seen == []


def test_an_app_that_raises_before_its_status_can_be_served_elsewhere() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise RuntimeError("canary broke")

    outcome = attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert outcome == (None, None, True)
    assert server.started == []


def test_legacy_write_commits_at_once_and_is_never_retried() -> None:
    server, reports = Server(), Reports()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        write = start_response("500 Internal Server Error", [])
        write(b"partial ")  # the status went out with these bytes: too late to retry
        return [b"rest"]

    outcome = attempt(app, {}, server.start_response, reports, failed=is_5xx)
    assert outcome.response is not None and outcome.status == 500
    assert server.started == [("500 Internal Server Error", False)] and server.written == [b"partial "]
    assert consume(outcome.response) == b"rest"
    assert reports.seen == [(500, False)]


def test_status_chosen_on_the_first_chunk_is_held_too() -> None:
    server, reports = Server(), Reports()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterator[bytes]:
        start_response("200 OK", [])  # runs at the first next(), not at the call
        yield b"one "
        yield b"two"

    outcome = attempt(app, {}, server.start_response, reports, failed=is_5xx)
    assert outcome.response is not None and outcome.status == 200
    assert server.started == [("200 OK", False)]
    assert consume(outcome.response) == b"one two"  # the first chunk is not lost
    assert reports.seen == [(200, False)]


def test_a_failed_status_on_the_first_chunk_closes_the_generator() -> None:
    server = Server()
    closed: list[bool] = []
    kept: list[t.Iterator[bytes]] = []  # a reference of our own: only close() can end it, not the collector

    def body(start_response: StartResponse) -> t.Iterator[bytes]:
        try:
            start_response("502 Bad Gateway", [])
            yield b"bad"
        finally:
            closed.append(True)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterator[bytes]:
        kept.append(body(start_response))
        return kept[0]

    outcome = attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert outcome == (None, 502, False)
    assert server.started == [] and closed == [True]


def test_raising_on_the_first_chunk_before_a_status_is_a_retryable_failure() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterator[bytes]:
        raise RuntimeError("broke while starting the body")
        yield b""  # pragma: no cover

    outcome = attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert outcome == (None, None, True)
    assert server.started == []


def test_no_status_at_all_is_a_failure() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return []  # never called start_response

    outcome = attempt(app, {}, Server().start_response, Reports(), failed=is_5xx)
    assert outcome == (None, None, True)


def test_a_held_exc_info_goes_to_the_server_with_the_status() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        try:
            raise KeyError("no such order")
        except KeyError:
            start_response("404 Not Found", [], sys.exc_info())  # nothing sent yet: allowed
        return [b"not found"]

    outcome = attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert outcome.response is not None and outcome.status == 404
    assert server.started == [("404 Not Found", True)]


def test_committed_then_raising_on_the_first_chunk_re_raises() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterator[bytes]:
        write = start_response("200 OK", [])
        write(b"already sent")
        raise RuntimeError("broke after sending")
        yield b""  # pragma: no cover

    with pytest.raises(RuntimeError, match="after sending"):
        attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert server.started == [("200 OK", False)] and server.written == [b"already sent"]


def test_inside_another_layer_the_report_runs_when_the_owner_closes() -> None:
    server, reports, body = Server(), Reports(), Body([b"ok"])
    environ: dict[str, t.Any] = {}
    scope, owner = RequestScope.join(environ)  # the outer layer (Extraction, Metrics) owns the scope
    assert owner

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("201 Created", [])
        return body

    outcome = attempt(app, environ, server.start_response, reports, failed=is_5xx)
    assert outcome.response is not None
    response = scope.finish(outcome.response)  # what the owner hands the server
    assert consume(response) == b"ok"
    assert body.closed and reports.seen == [(201, False)]


def test_exc_info_after_commit_goes_to_the_server_which_re_raises() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())  # the server re-raises
        return [b""]  # pragma: no cover

    with pytest.raises(ValueError, match="late"):
        attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert server.started == [("200 OK", False)]


def test_a_changed_status_before_commit_replaces_the_held_one() -> None:
    server = Server()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [])
        try:
            raise ValueError("changed its mind")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())  # allowed: nothing sent yet
        return [b"error page"]

    outcome = attempt(app, {}, server.start_response, Reports(), failed=is_5xx)
    assert outcome == (None, 500, False)  # the final choice counts, and it failed
    assert server.started == []


def test_observe_reports_the_status_and_an_error_while_iterating() -> None:
    server, reports = Server(), Reports()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterator[bytes]:
        start_response("200 OK", [])
        yield b"a"
        raise OSError("disk")

    response = observe(app, {}, server.start_response, reports)
    with pytest.raises(OSError):
        consume(response)
    assert reports.seen == [(200, True)]
