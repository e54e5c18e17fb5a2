"""graywsgi.propagation: outgoing headers through real clients, logging, threads."""

from __future__ import annotations

import concurrent.futures
import http.server
import io
import json
import logging
import re
import subprocess
import sys
import threading
import typing as t
import urllib.parse
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router, get_current
from graywsgi.core.context import GrayContext
from graywsgi.layers.extraction import _valid_traceparent
from graywsgi.httputil.headers import valid_field_value
from graywsgi.httputil.propagation import (
    BAGGAGE_MAX_BYTES,
    BAGGAGE_MAX_MEMBERS,
    ContextExecutor,
    ContextFilter,
    baggage,
    httpx_hook,
    inject,
    instrument_httpx,
    instrument_requests,
    instrument_urllib3,
    outgoing_headers,
    requests_session,
    trace_id,
    traceparent,
)
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
INCOMING = {
    "X-Gray-ID": "user-7",
    "X-Env": "prod",
    "X-Version": "1.5.0",
    "X-Canary-ID": "c-42",
    "X-Traffic-Color": "canary",
    "X-Request-ID": "req-1",
    "traceparent": TRACEPARENT,
}
EXPECTED = {
    "x-gray-id": "user-7",
    "x-env": "prod",
    "x-version": "1.5.0",
    "x-canary-id": "c-42",
    "x-traffic-color": "canary",
    "x-request-id": "req-1",
    "traceparent": TRACEPARENT,
    "baggage": "gray.id=user-7,gray.env=prod,gray.version=1.5.0,gray.canary_id=c-42,"
    "gray.traffic_color=canary,gray.route=canary",
}
ROUTED = RuleSet(
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 100),)),),
)


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers with the request headers it received, as JSON pairs."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps([[name.lower(), value] for name, value in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo_url() -> t.Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


Pairs = t.List[t.List[str]]


def received(pairs: Pairs, names: t.Iterable[str] = EXPECTED) -> dict[str, list[str]]:
    """Header name -> every value received under it, for ``names``."""
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in names:
            found.setdefault(name, []).append(value)
    return found


def inside_request(call: t.Callable[[], Pairs], headers: dict[str, str] = INCOMING) -> Pairs:
    """Run ``call`` inside a graywsgi request (Extraction + Router) and return its result."""
    out: list[Pairs] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        out.append(call())
        return Response("ok")(environ, start_response)

    BufferedClient(Extraction(Router(app, ROUTED))).get("/", headers=headers)
    return out[0]


def one_each(pairs: Pairs) -> dict[str, str]:
    found = received(pairs)
    assert all(len(values) == 1 for values in found.values()), f"a header was sent twice: {found}"
    return {name: values[0] for name, values in found.items()}


# -- the three adapters, against a real server ----------------------------------------


def requests_call(url: str, headers: dict[str, str] | None = None) -> Pairs:
    requests = pytest.importorskip("requests")
    with instrument_requests(requests.Session()) as session:
        return t.cast(Pairs, session.get(url, headers=headers, timeout=5).json())


def urllib3_call(url: str, headers: dict[str, str] | None = None) -> Pairs:
    urllib3 = pytest.importorskip("urllib3")
    pool = instrument_urllib3(urllib3.PoolManager())
    try:
        return t.cast(Pairs, json.loads(pool.request("GET", url, headers=headers, timeout=5).data))
    finally:
        pool.clear()


def httpx_call(url: str, headers: dict[str, str] | None = None) -> Pairs:
    httpx = pytest.importorskip("httpx")
    with httpx.Client(event_hooks={"request": [httpx_hook]}, follow_redirects=True, timeout=5) as client:
        return t.cast(Pairs, client.get(url, headers=headers).json())


ADAPTERS = [
    pytest.param(requests_call, id="requests"),
    pytest.param(urllib3_call, id="urllib3"),
    pytest.param(httpx_call, id="httpx"),
]


@pytest.mark.parametrize("call", ADAPTERS)
def test_adapter_sends_the_context(echo_url: str, call: t.Callable[..., Pairs]) -> None:
    pairs = inside_request(lambda: call(echo_url + "/echo"))
    assert one_each(pairs) == EXPECTED


@pytest.mark.parametrize("call", ADAPTERS)
def test_adapter_keeps_what_the_caller_set(echo_url: str, call: t.Callable[..., Pairs]) -> None:
    mine = {"x-env": "qa", "TraceParent": "00-11111111111111111111111111111111-2222222222222222-01", "Baggage": "k=v"}
    pairs = inside_request(lambda: call(echo_url + "/echo", headers=mine))
    sent = one_each(pairs)
    assert sent["x-env"] == "qa"
    assert sent["traceparent"] == mine["TraceParent"]
    assert sent["baggage"] == "k=v," + EXPECTED["baggage"], "baggage members are merged by key"
    assert sent["x-gray-id"] == "user-7"


@pytest.mark.parametrize("call", ADAPTERS)
def test_adapter_follows_redirects_without_doubling_headers(echo_url: str, call: t.Callable[..., Pairs]) -> None:
    pairs = inside_request(lambda: call(echo_url + "/redirect"))
    assert one_each(pairs) == EXPECTED


@pytest.mark.parametrize("call", ADAPTERS)
def test_adapter_adds_nothing_outside_a_request(echo_url: str, call: t.Callable[..., Pairs]) -> None:
    assert received(call(echo_url + "/echo")) == {}


def test_requests_session_helper(echo_url: str) -> None:
    pytest.importorskip("requests")

    def call() -> Pairs:
        with requests_session() as session:
            assert instrument_requests(session) is session  # twice is harmless
            return t.cast(Pairs, session.get(echo_url + "/echo", timeout=5).json())

    assert one_each(inside_request(call)) == EXPECTED


def test_urllib3_pool_headers_and_connection_pool(echo_url: str) -> None:
    urllib3 = pytest.importorskip("urllib3")
    manager = instrument_urllib3(urllib3.PoolManager(headers={"X-Env": "from-pool"}))
    pool = instrument_urllib3(urllib3.HTTPConnectionPool("127.0.0.1", int(echo_url.rsplit(":", 1)[1])))
    pool_headers = dict(manager.headers)

    def call() -> Pairs:
        by_manager = json.loads(manager.request("GET", echo_url + "/echo").data)
        assert one_each(by_manager)["x-env"] == "from-pool", "the pool's own headers count as set"
        positional = json.loads(pool.urlopen("GET", "/echo", None, {"X-Version": "9"}).data)
        assert one_each(positional)["x-version"] == "9"
        return t.cast(Pairs, json.loads(pool.urlopen("GET", "/echo").data))

    assert one_each(inside_request(call)) == EXPECTED
    assert dict(manager.headers) == pool_headers, "the pool's headers are never changed in place"
    manager.clear()
    pool.close()


def test_instrument_httpx_adds_the_hook_once(echo_url: str) -> None:
    httpx = pytest.importorskip("httpx")
    with httpx.Client(timeout=5) as client:
        instrument_httpx(instrument_httpx(client))
        assert client.event_hooks["request"] == [httpx_hook]
        pairs = inside_request(lambda: t.cast(Pairs, client.get(echo_url + "/echo").json()))
    assert one_each(pairs) == EXPECTED


def test_adapters_are_imported_lazily() -> None:
    code = (
        "import sys, graywsgi, graywsgi.httputil.propagation, graywsgi.metrics.layer;"
        "print(sorted(m for m in ('requests', 'urllib3', 'httpx', 'statsd') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- what is sent -------------------------------------------------------------------------


def test_traceparent_is_continued_unchanged() -> None:
    context = GrayContext(request_id="r", trace_parent=TRACEPARENT)
    assert traceparent(context) == TRACEPARENT
    assert trace_id(context) == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "request_id, expected_trace_id",
    [
        pytest.param("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c", id="uuid hex: reused"),
        pytest.param("req-1", None, id="other: hashed"),
        pytest.param("0" * 32, None, id="all-zero hex is invalid: hashed"),
        pytest.param("0AF7651916CD43DD8448EB211C80319C", None, id="upper case: hashed"),
    ],
)
def test_traceparent_is_started_from_the_request_id(request_id: str, expected_trace_id: str | None) -> None:
    context = GrayContext(request_id=request_id)
    started = traceparent(context)
    assert started is not None and _valid_traceparent(started)
    version, trace, parent, flags = started.split("-")
    assert (version, flags) == ("00", "00")
    if expected_trace_id is not None:
        assert trace == expected_trace_id
    assert trace != "0" * 32
    assert traceparent(GrayContext(request_id=request_id)) == started, "the same for every call of a request"
    assert traceparent(GrayContext(request_id=request_id + "x")) != started


def test_outgoing_headers_outside_a_request() -> None:
    assert outgoing_headers() == {}
    assert traceparent() is None and trace_id() is None and baggage() is None
    headers = {"Accept": "*/*"}
    assert inject(headers) == {"Accept": "*/*"}


def test_only_present_and_valid_values_are_sent() -> None:
    context = GrayContext(
        request_id="r-1",
        gray_id="us\u00e9r",  # not ASCII: only in baggage
        env="bad\r\nvalue",  # never comes from Extraction; never sent
        version=" 1.0",  # surrounding space: not a field value as sent
    )
    headers = outgoing_headers(context)
    assert "X-Gray-ID" not in headers and "X-Env" not in headers and "X-Version" not in headers
    assert "X-Canary-ID" not in headers
    assert headers["X-Request-ID"] == "r-1"
    assert headers["baggage"] == "gray.id=us%C3%A9r,gray.env=bad%0D%0Avalue,gray.version=%201.0"
    assert all(valid_field_value(value) for value in headers.values())


@pytest.mark.parametrize(
    "value, encoded",
    [
        pytest.param("plain-1.0", "plain-1.0", id="safe characters stay"),
        pytest.param("a b", "a%20b", id="space"),
        pytest.param('a,b;c"d\\e', "a%2Cb%3Bc%22d%5Ce", id="comma semicolon quote backslash"),
        pytest.param("50%", "50%25", id="percent itself"),
        pytest.param("k=v", "k=v", id="equals is a baggage-octet"),
        pytest.param("\u00fc\u20ac", "%C3%BC%E2%82%AC", id="UTF-8 percent-encoded"),
    ],
)
def test_baggage_values_are_percent_encoded(value: str, encoded: str) -> None:
    assert baggage(GrayContext(request_id="r", env=value)) == f"gray.env={encoded}"


def test_baggage_merges_by_key_and_keeps_properties() -> None:
    context = GrayContext(request_id="r", gray_id="u1", env="prod", route="canary")
    existing = "gray.env=qa;prop=1, other=x"
    assert baggage(context, existing) == "gray.env=qa;prop=1, other=x,gray.id=u1,gray.route=canary"


def test_unparseable_baggage_is_left_alone() -> None:
    context = GrayContext(request_id="r", gray_id="u1")
    assert baggage(context, "no-equals-sign") == "no-equals-sign"
    headers = inject({"baggage": "no-equals-sign"}, context)
    assert headers["baggage"] == "no-equals-sign"


def test_baggage_member_limit() -> None:
    context = GrayContext(request_id="r", gray_id="u1", env="prod")
    almost = ",".join(f"k{n}=v" for n in range(BAGGAGE_MAX_MEMBERS - 1))
    assert baggage(context, almost) == almost + ",gray.id=u1", "room for exactly one more member"
    full = ",".join(f"k{n}=v" for n in range(BAGGAGE_MAX_MEMBERS))
    assert baggage(context, full) == full


def test_baggage_byte_limit_never_cuts_a_member() -> None:
    context = GrayContext(request_id="r", gray_id="u1", env="prod")
    # leave room for ",gray.id=u1" (11 bytes) but not for ",gray.env=prod" after it
    filler = "big=" + "x" * (BAGGAGE_MAX_BYTES - 4 - 11 - 5)
    merged = baggage(context, filler)
    assert merged == filler + ",gray.id=u1"
    assert len(merged.encode()) <= BAGGAGE_MAX_BYTES
    exact = "big=" + "x" * (BAGGAGE_MAX_BYTES - 4 - 11)
    assert len(t.cast(str, baggage(context, exact)).encode()) == BAGGAGE_MAX_BYTES
    over = "big=" + "x" * (BAGGAGE_MAX_BYTES - 4 - 10)
    assert baggage(context, over) == over


def test_inject_is_case_insensitive_with_a_plain_dict() -> None:
    context = GrayContext(request_id="r-1", gray_id="u1", env="prod")
    headers = inject({"x-gray-id": "mine", "X-REQUEST-ID": "mine-too"}, context)
    assert headers["x-gray-id"] == "mine" and headers["X-REQUEST-ID"] == "mine-too"
    assert "X-Gray-ID" not in headers and "X-Request-ID" not in headers
    assert headers["X-Env"] == "prod"


# -- logging ------------------------------------------------------------------------------


def capture_log(filter_: logging.Filter, fmt: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(filter_)
    handler.setFormatter(logging.Formatter(fmt))
    logger = logging.getLogger("tests.propagation.app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream, handler


FORMAT = "%(levelname)s [req=%(gray_request_id)s route=%(gray_route)s trace=%(gray_trace_id)s] %(message)s"


def test_logging_filter_inside_and_outside_a_request() -> None:
    logger, stream, handler = capture_log(ContextFilter(), FORMAT)
    try:
        logger.info("before")

        def call() -> Pairs:
            logging.getLogger("tests.propagation.app.child").info("inside")
            return []

        inside_request(call)
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "INFO [req=- route=- trace=-] before",
        "INFO [req=req-1 route=canary trace=4bf92f3577b34da6a3ce929d0e0e4736] inside",
        "INFO [req=- route=- trace=-] after",
    ]


def test_logging_filter_fields_for_structured_loggers() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter(prefix="ctx_", default=None))
    logger = logging.getLogger("tests.propagation.structured")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")

        def call() -> Pairs:
            logger.warning("inside", extra={"ctx_env": "from-extra"})
            return []

        inside_request(call, {**INCOMING, "X-Env": "bad\x01"})
    finally:
        logger.removeHandler(handler)
    outside, inside = (record.__dict__ for record in records)
    fields = [k for k in inside if k.startswith("ctx_")]
    assert sorted(fields) == sorted(
        "ctx_" + name
        for name in (
            "request_id", "gray_id", "env", "version", "canary_id", "traffic_color",
            "route", "group", "rules_version", "degrade_level", "trace_id",
        )
    )
    assert all(outside[name] is None for name in fields)
    assert inside["ctx_env"] == "from-extra", "attributes from extra= are kept"
    assert inside["ctx_degrade_level"] == 1 and type(inside["ctx_degrade_level"]) is int
    assert inside["ctx_group"] is None
    assert json.dumps({name: inside[name] for name in fields})  # serialisable as is


# -- threads ------------------------------------------------------------------------------


def test_executor_tasks_see_the_request_and_keep_nothing() -> None:
    with ContextExecutor(max_workers=1) as pool:

        def call() -> Pairs:
            seen = pool.submit(lambda: t.cast(GrayContext, get_current()).request_id).result()
            mapped = list(pool.map(lambda n: (n, t.cast(GrayContext, get_current()).route), [1, 2]))
            assert mapped == [(1, "canary"), (2, "canary")]
            return [[seen]]

        assert inside_request(call) == [["req-1"]]
        # the same worker thread, with a task not carried over: nothing is bound there
        bare = concurrent.futures.ThreadPoolExecutor.submit(pool, get_current)
        assert bare.result() is None
        assert pool.submit(get_current).result() is None, "submitted outside a request: nothing"


def test_executor_concurrent_requests_each_see_their_own() -> None:
    barrier = threading.Barrier(4)
    pool = ContextExecutor(max_workers=4)
    results: dict[str, str] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        mine = t.cast(GrayContext, get_current()).request_id

        def task() -> str:
            barrier.wait(timeout=5)  # all four tasks run at once on four threads
            return t.cast(GrayContext, get_current()).request_id

        results[mine] = pool.submit(task).result(timeout=10)
        return Response("ok")(environ, start_response)

    client_app = Extraction(app)

    def one(n: int) -> None:
        BufferedClient(client_app).get("/", headers={"X-Request-ID": f"r{n}"})

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.shutdown()
    assert results == {f"r{n}": f"r{n}" for n in range(4)}


def test_headers_are_valid_field_values_for_every_extracted_context() -> None:
    """Whatever Extraction accepts, propagation sends only valid field values."""
    values = ["plain", "caf\u00e9", "a b", "x" * 256, "\u00ff\u00fe", "a\tb", "tab\t"]
    for value in values:
        encoded = value.encode("utf-8").decode("latin-1")

        def call() -> Pairs:
            return [[k, v] for k, v in outgoing_headers().items()]

        pairs = inside_request(call, {"X-Gray-ID": encoded, "X-Env": encoded})
        for name, sent in pairs:
            assert valid_field_value(sent) and sent.isascii(), (name, sent)
            if name == "baggage":
                assert re.fullmatch(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+(,[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+)*", sent)
                for member in sent.split(","):
                    key, _, raw = member.partition("=")
                    if key == "gray.id":
                        assert urllib.parse.unquote(raw) == value.strip(" \t")  # Extraction trims
