"""``bench/fused_floor.py`` does the work it claims, so its cost is a fair floor for the core chain's."""

from __future__ import annotations

import typing as t

import pytest
from werkzeug.test import Client

from graywsgi import CanarySplit, Extraction

from .bench_helpers import load_bench_module

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

fused_floor = load_bench_module("fused_floor")


def route_echo(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["HTTP_X_ROUTE_TO"].encode()]


def test_it_splits_the_same_users_to_canary_as_canary_split() -> None:
    ours = Client(Extraction(CanarySplit(route_echo, percent=15)))
    floor = Client(fused_floor.FusedFloor(route_echo, percent=15))
    routes = []
    for n in range(400):
        headers = {"X-Gray-ID": f"user-{n}"}
        expected = ours.get("/", headers=headers).get_data(as_text=True)
        assert floor.get("/", headers=headers).get_data(as_text=True) == expected, n
        routes.append(expected)
    assert 0 < routes.count("canary") < routes.count("stable")  # both routes were exercised
    assert floor.get("/").get_data(as_text=True) == "stable"  # no gray id: never canary


#: The five gray headers of the benchmark's request (``bench/run.py``'s ``gray_environ``).
BENCH_HEADERS = {
    "X-Gray-ID": "user-7f3a9c2e-41d8-4f3b-9a51-0c6e2b7d8e10",
    "X-Env": "prod",
    "X-Version": "1.5.0",
    "X-Request-ID": "0af7651916cd43dd8448eb211c80319c",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}


def context_of(headers: dict[str, str]) -> tuple[t.Any, ...]:
    """The context the floor binds for a request with ``headers``, as the app sees it."""
    seen: list[tuple[t.Any, ...]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(fused_floor.FUSED_CONTEXT.get())
        return route_echo(environ, start_response)

    response = Client(fused_floor.FusedFloor(app)).get("/", headers=headers)
    assert response.status_code == 200
    return seen[0]


def test_the_benchmark_request_keeps_all_five_values() -> None:
    # The benchmark must time the path where every check passes.
    assert context_of(BENCH_HEADERS)[:5] == tuple(BENCH_HEADERS.values())
    assert context_of({"X-Gray-ID": "u" * 256})[0] == "u" * 256  # the longest value kept


@pytest.mark.parametrize(
    ("header", "value", "index"),
    [
        ("X-Gray-ID", "has space", 0),
        ("X-Env", "x" * 257, 1),
        ("X-Version", "caf\u00e9", 2),
        ("X-Request-ID", "tab\there", 3),
        ("traceparent", "00-not-a-trace-01", 4),
    ],
)
def test_a_malformed_value_is_dropped_and_the_request_still_served(header: str, value: str, index: int) -> None:
    context = context_of({**BENCH_HEADERS, header: value})
    assert context[index] is None
    expected: list[str | None] = list(BENCH_HEADERS.values())
    expected[index] = None  # only the malformed value is dropped
    assert list(context[:5]) == expected


def test_the_context_is_bound_while_the_body_runs_and_closes_then_released() -> None:
    seen: list[tuple[str, t.Any]] = []
    var = fused_floor.FUSED_CONTEXT

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            seen.append(("next", var.get(None)))
            yield b"a"
            seen.append(("next", var.get(None)))
            yield b"b"

        def close(self) -> None:
            seen.append(("close", var.get(None)))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(("call", var.get(None)))
        start_response("200 OK", [])
        return Body()

    environ = {"HTTP_X_GRAY_ID": "u1", "HTTP_X_ENV": "prod", "REQUEST_METHOD": "GET"}
    result = fused_floor.FusedFloor(app)(environ, lambda status, headers, exc_info=None: None)
    assert var.get(None) is None  # released when the call returned
    assert b"".join(result) == b"ab"
    result.close()
    assert var.get(None) is None
    context = ("u1", "prod", None, None, None, environ["HTTP_X_ROUTE_TO"])
    assert seen == [("call", context), ("next", context), ("next", context), ("close", context)]


def test_the_ring_counts_each_closed_response_and_its_errors() -> None:
    def broken_body() -> t.Iterator[bytes]:
        yield b"x"
        raise RuntimeError("body broke")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["PATH_INFO"] == "/raise":
            raise RuntimeError("boom")
        start_response("503 Service Unavailable" if environ["PATH_INFO"] == "/down" else "200 OK", [])
        return broken_body() if environ["PATH_INFO"] == "/broken" else [b"x"]

    floor = fused_floor.FusedFloor(app)
    client = Client(floor)
    for path in ("/", "/", "/down"):
        client.get(path, buffered=True)  # buffered: the response is read and closed
    with pytest.raises(RuntimeError, match="boom"):
        client.get("/raise")
    with pytest.raises(RuntimeError, match="body broke"):
        client.get("/broken", buffered=True)  # a 200 whose body raises is a failure too
    assert floor.ring.totals() == (5, 3)
