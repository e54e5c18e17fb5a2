"""Tests of graywsgi.evolution.stages: ProtocolEvolution -- the three stages, redirects, 410, status."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import logging
import threading
import typing as t

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from graywsgi.evolution.api import Api, Exemption
from graywsgi.evolution.stages import ProtocolEvolution
from graywsgi.metrics.layer import EVENTS_KEY
from tests.conftest import BufferedClient
from tests.evolution.conftest import DAY, T0, Clock, client, echo, orders
from tests.gunicorn_helpers import free_port

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


# -- compat -----------------------------------------------------------------


def test_compat_serves_old_with_deprecation_sunset_and_link() -> None:
    switch_at = T0 + 90 * DAY
    response = client(orders(switch_at=switch_at, transition_at=T0 + 30 * DAY)).get("/v1/orders/7?x=1")
    assert response.status_code == 200
    assert response.json["path"] == "/v1/orders/7"
    assert response.json["stage"] == "compat" and response.json["api"] == "orders"
    assert response.headers["Deprecation"] == f"@{int(T0)}"
    assert response.headers["Sunset"] == email.utils.formatdate(switch_at, usegmt=True)
    assert response.headers["Sunset"] == "Wed, 01 Apr 2026 00:00:00 GMT"
    assert response.headers["Link"] == '</v2/orders/7>; rel="successor-version"'
    assert response.headers["X-Protocol-Version"] == "1"


def test_new_paths_and_others_pass_with_their_version() -> None:
    c = client(orders())
    new = c.get("/v2/orders/7", headers={"X-Protocol-Version": "2.1"})
    assert new.status_code == 200 and new.headers["X-Protocol-Version"] == "2"
    assert "Deprecation" not in new.headers and new.json["version"] == "2.1"
    other = c.get("/v1/ordersx")  # a prefix matches whole segments only
    assert "Deprecation" not in other.headers and "X-Protocol-Version" not in other.headers
    assert other.json["stage"] is None


def test_no_sunset_header_without_a_date() -> None:
    response = client(orders()).get("/v1/orders")
    assert "Sunset" not in response.headers and response.headers["Deprecation"] == f"@{int(T0)}"


def test_app_headers_win_over_added_ones() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("X-Protocol-Version", "1.4"), ("Link", '</v1/orders?page=2>; rel="next"')])
        return [b""]

    response = BufferedClient(ProtocolEvolution(app, apis=[orders()])).get("/v1/orders")
    assert response.headers.getlist("X-Protocol-Version") == ["1.4"]
    assert response.headers.getlist("Link") == ['</v1/orders?page=2>; rel="next"',
                                               '</v2/orders>; rel="successor-version"']


# -- dated stages ---------------------------------------------------------------


def test_status_for_the_admin_page() -> None:
    clock = Clock()
    evolution = ProtocolEvolution(
        echo, apis=[orders(transition_at="2026-02-01T00:00:00Z", switch_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                           exemptions=[Exemption("X-SDK-Version", "<2.0.0")])], clock=clock)
    row = evolution.status()[0]
    assert row["stage"] == "compat" and row["next_stage"] == "transition"
    assert row["next_stage_at"] == "2026-02-01T00:00:00Z" and row["switch_at"] == "2026-03-01T00:00:00Z"
    assert row["exemptions"] == ["X-SDK-Version <2.0.0"] and row["mirror"] is None
    assert row["sunset"] == "Sun, 01 Mar 2026 00:00:00 GMT"
    clock.now = T0 + 45 * DAY
    row = evolution.status()[0]
    assert (row["stage"], row["next_stage"]) == ("transition", "switch")
    clock.now = T0 + 400 * DAY
    assert evolution.status()[0]["next_stage"] is None


# -- transition ---------------------------------------------------------------------


def test_308_keeps_method_body_and_query_with_werkzeug_client() -> None:
    c = client(orders(stage="transition"))
    first = c.post("/v1/orders/7?full=1&x=%2F", data=b'{"qty": 2}')
    assert first.status_code == 308
    assert first.headers["Location"] == "/v2/orders/7?full=1&x=%2F"
    assert first.headers["Link"] == '</v2/orders/7>; rel="successor-version"'
    assert first.headers["Deprecation"] == f"@{int(T0)}"
    followed = c.post("/v1/orders/7?full=1&x=%2F", data=b'{"qty": 2}', follow_redirects=True)
    assert followed.status_code == 200
    assert followed.json["method"] == "POST" and followed.json["body"] == '{"qty": 2}'
    assert followed.json["path"] == "/v2/orders/7" and followed.json["query"] == "full=1&x=%2F"


def test_redirect_keeps_script_name_and_encodes_the_path() -> None:
    c = client(orders(stage="transition"))
    response = c.get("/v1/orders/a%20b", environ_overrides={"SCRIPT_NAME": "/shop"})
    assert response.headers["Location"] == "/shop/v2/orders/a%20b"


def test_308_over_real_http_followed_by_http_client() -> None:
    server = make_server("127.0.0.1", free_port(), ProtocolEvolution(echo, apis=[orders(stage="transition")],
                                                                     clock=Clock()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        body = b"a=1&b=" + b"x" * 5000
        conn.request("PUT", "/v1/orders/9?keep=yes", body=body, headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        response.read()
        assert response.status == 308
        location = response.getheader("Location")
        assert location == "/v2/orders/9?keep=yes"
        conn.request("PUT", location, body=body, headers={"Content-Type": "text/plain"})  # as a client follows 308
        followed = conn.getresponse()
        document = json.loads(followed.read())
        conn.close()
        assert followed.status == 200 and followed.getheader("X-Protocol-Version") == "2"
        assert document["method"] == "PUT" and document["body"] == body.decode()
        assert document["query"] == "keep=yes"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_301_only_when_configured_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.evolution"):
        api = orders(stage="transition", redirect_status=301)
    assert "301" in caplog.text and "POST to GET" in caplog.text
    response = client(api).get("/v1/orders?q=1")
    assert response.status_code == 301 and response.headers["Location"] == "/v2/orders?q=1"


@pytest.mark.parametrize(
    "sdk, status",
    [
        pytest.param("1.9.3", 200, id="old sdk served"),
        pytest.param("2.0.0", 308, id="new sdk redirected"),
        pytest.param("not-a-version", 308, id="invalid version redirected"),
        pytest.param(None, 308, id="no header redirected"),
    ],
)
def test_exemptions_in_transition(sdk: str | None, status: int) -> None:
    c = client(orders(stage="transition", exemptions=[Exemption("X-SDK-Version", "<2.0.0")]))
    response = c.get("/v1/orders", headers={"X-SDK-Version": sdk} if sdk else {})
    assert response.status_code == status
    if status == 200:
        assert response.headers["Deprecation"] and response.json["stage"] == "transition"


# -- switch -------------------------------------------------------------------------


def test_switch_answers_410_problem_naming_the_successor() -> None:
    response = client(orders(stage="switch")).post("/v1/orders/7", data=b"x")
    assert response.status_code == 410
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Link"] == '</v2/orders/7>; rel="successor-version"'
    document = response.json
    assert document["status"] == 410 and document["title"] == "Gone"
    assert document["successor"] == "/v2/orders/7" and document["successor_version"] == "2"
    assert "/v2/orders/7" in document["detail"] and document["api"] == "orders"


# -- metrics, fail-open -------------------------------------------------------


def test_stage_is_counted_in_metrics() -> None:
    events: list[tuple[str, dict[str, str]]] = []
    c = client(orders(stage="transition", exemptions=[Exemption("X-SDK-Version", "1.x")]))
    c.get("/v1/orders", environ_base={EVENTS_KEY: events})
    c.get("/v1/orders", headers={"X-SDK-Version": "1.2.0"}, environ_base={EVENTS_KEY: events})
    assert events == [
        ("evolution", {"api": "orders", "stage": "transition", "action": "redirected"}),
        ("evolution", {"api": "orders", "stage": "transition", "action": "exempt"}),
    ]


def test_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> float:
        raise RuntimeError("clock broke")

    c = client(orders(stage="switch"), clock=broken)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="graywsgi.evolution"):
        response = c.get("/v1/orders")
    assert response.status_code == 200 and "Deprecation" not in response.headers
    assert "served unchanged" in caplog.text


def test_app_errors_are_not_swallowed() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise KeyError("app bug")

    with pytest.raises(KeyError):
        BufferedClient(ProtocolEvolution(app, apis=[orders()])).get("/v1/orders")


def test_stage_is_in_the_gray_context_and_the_admin_status(tmp_path: t.Any) -> None:
    from graywsgi import AdminApp, Extraction, Router, current
    from graywsgi.layers.guard import Guard
    from graywsgi.rules.model import Cluster, RuleSet
    from graywsgi.state.rollout_state import FileStateStore

    seen: list[str | None] = []

    def app(environ: t.Any, start_response: t.Any) -> t.Iterable[bytes]:
        seen.append(current.protocol_stage)
        return Response("ok")(environ, start_response)

    evolution = ProtocolEvolution(app, apis=[Api("orders", old="/v1/orders", new="/v2/orders")])
    client = BufferedClient(Extraction(evolution))
    client.get("/v1/orders/7")
    client.get("/v2/orders/7")
    assert seen == ["compat", None]

    router = Router(app, RuleSet(clusters={"stable": Cluster()}),
                    guard=Guard(state=FileStateStore(tmp_path / "s.json")))
    admin = AdminApp(router, token="a-long-admin-token-1234", evolution=evolution)
    status = json.loads(BufferedClient(admin).get(
        "/status", headers={"Authorization": "Bearer a-long-admin-token-1234"}).data)
    assert status["protocol_evolution"] == json.loads(json.dumps(evolution.status()))
