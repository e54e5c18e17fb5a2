"""graywsgi.rollout.checklist.http_kinds: the http and metrics_within_baseline kinds against a real server."""

from __future__ import annotations

import json
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.layers.guard import Guard
from graywsgi.rollout.checklist.results import CheckStatus
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from tests.rollout.checklist.helpers import free_port, run_one

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Server:
    """A real HTTP server on 127.0.0.1 answering from a table of paths."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.delays: dict[str, float] = {}
        self.seen_headers: list[dict[str, str]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.seen_headers.append(dict(self.headers.items()))
                delay = server.delays.get(path)
                if delay:
                    server.release.wait(delay)
                status, body, headers = server.routes.get(path, (404, b"not found", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: t.Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def json(self, path: str, document: t.Any, status: int = 200) -> str:
        self.routes[path] = (status, json.dumps(document).encode(), {"Content-Type": "application/json"})
        return self.url(path)


@pytest.fixture
def server() -> t.Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(5)


# -- http -------------------------------------------------------------------------


def test_http_passes_on_status_and_json_field(tmp_path: Path, server: Server) -> None:
    url = server.json("/health", {"status": "ok", "checks": [{"db": "up"}]})
    result = run_one(
        tmp_path, f"    kind: http\n    timeout: 5\n    url: {url}\n    json_field: checks.0.db\n    expect_value: up\n"
    )
    assert result.status is CheckStatus.PASSED
    assert result.reason == 'HTTP 200, $.checks[0].db = "up"'
    assert result.details == {"url": url, "status": 200, "value": "up"}


HTTP_CASES = [
    pytest.param(
        (503, {"status": "down"}), "", CheckStatus.FAILED, "HTTP 503, expected 200", id="wrong status"
    ),
    pytest.param(
        (503, {"status": "down"}), "    expect_status: [200, 503]\n", CheckStatus.PASSED, "HTTP 503",
        id="status list",
    ),
    pytest.param(
        (200, {"status": "degraded"}), "    json_field: status\n    expect_value: ok\n", CheckStatus.FAILED,
        'HTTP 200 but $.status is "degraded", expected "ok"', id="field differs",
    ),
    pytest.param(
        (200, {"status": "ok"}), "    json_field: db.state\n", CheckStatus.FAILED,
        "HTTP 200 but the body has no $.db", id="field missing",
    ),
    pytest.param(
        (200, {"status": "ok"}), "    json_field: status\n", CheckStatus.PASSED,
        'HTTP 200, $.status = "ok"', id="field present, any value",
    ),
    pytest.param(
        (200, {"up": 1}), "    json_field: up\n    expect_value: true\n", CheckStatus.FAILED,
        "HTTP 200 but $.up is 1, expected true", id="1 is not true",
    ),
    pytest.param(
        (200, {"n": 2.0}), "    json_field: n\n    expect_value: 2\n", CheckStatus.PASSED,
        "HTTP 200, $.n = 2.0", id="2.0 is 2",
    ),
    pytest.param(
        (200, []), "    expect_value: []\n", CheckStatus.PASSED, "HTTP 200, the body = []", id="whole body",
    ),
    pytest.param(
        (200, {"a.b": {"c": 1}}), "    json_field: ['a.b', c]\n    expect_value: 1\n", CheckStatus.PASSED,
        "HTTP 200, $.a.b.c = 1", id="key with a dot as a list path",
    ),
]


@pytest.mark.parametrize("answer, extra, status, reason", HTTP_CASES)
def test_http_probe(
    tmp_path: Path, server: Server, answer: tuple[int, t.Any], extra: str, status: CheckStatus, reason: str
) -> None:
    url = server.json("/health", answer[1], status=answer[0])
    result = run_one(tmp_path, f"    kind: http\n    timeout: 5\n    url: {url}\n{extra}")
    assert (result.status, result.reason) == (status, reason)


def test_http_body_that_is_not_json(tmp_path: Path, server: Server) -> None:
    server.routes["/health"] = (200, b"<html>", {})
    result = run_one(tmp_path, f"    kind: http\n    timeout: 5\n    url: {server.url('/health')}\n    json_field: a\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason.startswith("HTTP 200 but the body is not JSON")


def test_http_redirect_is_the_answer_not_a_hop(tmp_path: Path, server: Server) -> None:
    server.routes["/old"] = (302, b"", {"Location": "file:///etc/passwd"})
    result = run_one(tmp_path, f"    kind: http\n    timeout: 5\n    url: {server.url('/old')}\n")
    assert (result.status, result.reason) == (CheckStatus.FAILED, "HTTP 302, expected 200")


def test_http_connection_refused_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    result = run_one(tmp_path, f"    kind: http\n    timeout: 5\n    url: {url}\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason.startswith(f"cannot reach {url}: ")


def test_http_slow_server_times_out(tmp_path: Path, server: Server) -> None:
    url = server.json("/slow", {"status": "ok"})
    server.delays["/slow"] = 10
    result = run_one(tmp_path, f"    kind: http\n    timeout: 0.3\n    url: {url}\n")
    assert result.status is CheckStatus.TIMED_OUT
    assert 0.3 <= result.duration < 2


def test_http_headers_and_bearer_token_from_the_environment(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.json("/health", {"status": "ok"})
    check = f"    kind: http\n    timeout: 5\n    url: {url}\n    headers: {{X-Env: prod}}\n    bearer_token_env: GRAY_TOKEN\n"
    monkeypatch.delenv("GRAY_TOKEN", raising=False)
    result = run_one(tmp_path, check)
    assert (result.status, result.reason) == (
        CheckStatus.FAILED, "environment variable GRAY_TOKEN (bearer_token_env) is not set"
    )
    assert not server.seen_headers
    monkeypatch.setenv("GRAY_TOKEN", "s3cret")
    assert run_one(tmp_path, check).status is CheckStatus.PASSED
    assert server.seen_headers[-1]["Authorization"] == "Bearer s3cret"
    assert server.seen_headers[-1]["X-Env"] == "prod"


# -- metrics_within_baseline ------------------------------------------------------------


def status_document(route: tuple[int, int], baseline: tuple[int, int]) -> dict[str, t.Any]:
    return {
        "breakers": {"canary": {"totals": {"requests": route[0], "errors": route[1], "slow": 0}}},
        "baseline": {"requests": baseline[0], "errors": baseline[1], "slow": 0},
    }


METRICS_CASES = [
    pytest.param(
        (1000, 10), (1000, 10), "", CheckStatus.PASSED,
        "canary error rate 1.00 % (10/1000) vs baseline 1.00 % (10/1000): +0.0 % relative, allowed 10 %",
        id="same rate",
    ),
    pytest.param(
        (1000, 11), (1000, 10), "", CheckStatus.PASSED, "+10.0 % relative", id="exactly 10 % above",
    ),
    pytest.param(
        (1000, 12), (1000, 10), "", CheckStatus.FAILED, "+20.0 % relative", id="20 % above",
    ),
    pytest.param(
        (1000, 41), (1000, 3), "", CheckStatus.FAILED,
        "canary error rate 4.10 % (41/1000) vs baseline 0.30 % (3/1000): +1266.7 % relative, allowed 10 %", id="the issue's example",
    ),
    pytest.param((1000, 5), (1000, 10), "", CheckStatus.PASSED, "-50.0 % relative", id="below passes"),
    pytest.param(
        (1000, 5), (1000, 10), "    direction: either\n", CheckStatus.FAILED, "-50.0 % relative",
        id="below fails with direction either",
    ),
    pytest.param(
        (1000, 1), (1000, 0), "", CheckStatus.FAILED, "baseline is 0, allowed 10 %",
        id="zero baseline, any error fails",
    ),
    pytest.param(
        (1000, 1), (1000, 0), "    absolute_margin_percent: 0.1\n", CheckStatus.PASSED,
        "baseline is 0, allowed 10 % or 0.1 points", id="zero baseline with a margin",
    ),
    pytest.param(
        (1000, 2), (1000, 0), "    absolute_margin_percent: 0.1\n", CheckStatus.FAILED,
        "canary error rate 0.20 % (2/1000)", id="over the margin",
    ),
    pytest.param(
        (10, 0), (1000, 10), "    min_requests: 20\n", CheckStatus.FAILED,
        "route 'canary' has 10 requests in the window; at least 20 needed to compare", id="too little traffic",
    ),
    pytest.param(
        (0, 0), (1000, 10), "", CheckStatus.FAILED,
        "route 'canary' has 0 requests in the window; at least 1 needed to compare", id="no traffic",
    ),
]


@pytest.mark.parametrize("route, baseline, extra, status, reason", METRICS_CASES)
def test_metrics_within_baseline(
    tmp_path: Path,
    server: Server,
    route: tuple[int, int],
    baseline: tuple[int, int],
    extra: str,
    status: CheckStatus,
    reason: str,
) -> None:
    url = server.json("/_gray/status", status_document(route, baseline))
    result = run_one(
        tmp_path,
        f"    kind: metrics_within_baseline\n    timeout: 5\n    url: {url}\n    route: canary\n"
        f"    max_deviation_percent: 10\n{extra}",
    )
    assert result.status is status, result.reason
    assert reason in result.reason, result.reason


@pytest.mark.parametrize(
    "document, reason",
    [
        pytest.param({"baseline": {"requests": 1, "errors": 0}}, "the status document has no $.breakers", id="no breakers"),
        pytest.param(
            {"breakers": {"canary": {"totals": {"requests": 5, "errors": "x"}}}, "baseline": {}},
            '$.breakers.canary.totals.errors is "x", expected a count', id="not a count",
        ),
        pytest.param(
            {"breakers": {"canary": {"totals": {"requests": 5, "errors": 9}}}, "baseline": {}},
            "$.breakers.canary.totals counts 9 errors in 5 requests", id="more errors than requests",
        ),
        pytest.param(
            {"breakers": {"canary": {"totals": {"requests": 5, "errors": 0}}}, "baseline": {"requests": True}},
            "$.baseline.requests is true, expected a count", id="a boolean is not a count",
        ),
    ],
)
def test_metrics_status_document_of_another_shape_is_an_error(
    tmp_path: Path, server: Server, document: dict[str, t.Any], reason: str
) -> None:
    url = server.json("/_gray/status", document)
    result = run_one(
        tmp_path, f"    kind: metrics_within_baseline\n    timeout: 5\n    url: {url}\n    route: canary\n"
        "    max_deviation_percent: 10\n",
    )
    assert result.status is CheckStatus.ERROR
    assert reason in result.reason, result.reason


def test_metrics_paths_and_fields_are_configurable(tmp_path: Path, server: Server) -> None:
    url = server.json(
        "/metrics",
        {"routes": {"v2.canary": {"n": 100, "slow_calls": 5}}, "reference": {"stats": {"n": 100, "slow_calls": 5}}},
    )
    result = run_one(
        tmp_path,
        f"    kind: metrics_within_baseline\n    timeout: 5\n    url: {url}\n    route: v2.canary\n"
        "    max_deviation_percent: 10\n    route_totals: [routes, '{route}']\n"
        "    baseline_totals: reference.stats\n    requests_field: n\n    metric: slow_calls\n",
    )
    assert result.status is CheckStatus.PASSED, result.reason
    assert result.reason.startswith("v2.canary slow_calls rate 5.00 % (5/100)")


def test_metrics_source_unreachable_is_an_error(tmp_path: Path, server: Server) -> None:
    url = server.json("/_gray/status", {"error": "unauthorized"}, status=401)
    result = run_one(
        tmp_path, f"    kind: metrics_within_baseline\n    timeout: 5\n    url: {url}\n    route: canary\n"
        "    max_deviation_percent: 10\n",
    )
    assert (result.status, result.reason) == (CheckStatus.ERROR, f"status document {url}: HTTP 401")


def stable_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response("stable")(environ, start_response)


def test_metrics_against_a_real_router_status(tmp_path: Path, server: Server) -> None:
    """The default paths fit what Router.status() (the admin app's status) serves."""
    rules = RuleSet(
        id="m1",
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="half", split=(Backend("canary", 50), Backend("stable", 50))),),
    )
    calls = {"canary": 0}

    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        calls["canary"] += 1
        return Response("canary", status=500 if calls["canary"] % 4 == 0 else 200)(environ, start_response)

    router = Router(
        stable_app, rules, apps={"canary": canary},
        guard=Guard(policy=BreakerPolicy(min_requests=100000, error_rate=0.99), retry_on_stable=False),
    )
    client = Client(Extraction(router))
    for i in range(200):
        client.get("/", headers={"X-Gray-ID": f"user-{i}"}).close()
    status = router.status()
    totals = status["breakers"]["canary"]["totals"]
    assert totals["requests"] > 20 and totals["errors"] > 0 and status["baseline"]["requests"] > 20
    url = server.json("/_gray/status", status)
    result = run_one(
        tmp_path,
        f"    kind: metrics_within_baseline\n    timeout: 5\n    url: {url}\n    route: canary\n"
        "    max_deviation_percent: 10\n",
    )
    assert result.status is CheckStatus.FAILED  # a quarter of the canary's requests fail, none of stable's
    assert result.reason.startswith(f"canary error rate {totals['errors'] / totals['requests'] * 100:.2f} %")
    assert result.details["route_requests"] == totals["requests"]
