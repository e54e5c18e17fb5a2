"""Tests of graywsgi.evolution.mirror: shadow calls, queue, bodies, fork and shutdown; with ProtocolEvolution under gunicorn."""

from __future__ import annotations

import http.client
import json
import logging
import os
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import graywsgi.evolution.mirror as mirror_module
from graywsgi.errors import ConfigurationError
from graywsgi.evolution.api import Api, Exemption
from graywsgi.evolution.mirror import Mirror
from graywsgi.evolution.stages import ProtocolEvolution
from tests.conftest import BufferedClient
from tests.gunicorn_helpers import Gunicorn, free_port

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

JSON = [("Content-Type", "application/json")]


class Shadow:
    """A shadow WSGI app that records what it got; it can be held until released."""

    def __init__(self, body: dict[str, t.Any] | None = None, hold: bool = False) -> None:
        self.body = body if body is not None else {"id": 7}
        self.requests: list[dict[str, t.Any]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.finished_at: list[float] = []
        self.done = threading.Semaphore(0)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        self.started.set()
        request = Request(environ)
        self.requests.append({
            "method": request.method, "path": request.path, "query": request.query_string.decode(),
            "body": request.get_data(), "mirror": request.headers.get("X-Graywsgi-Mirror"),
        })
        self.release.wait(10)
        self.finished_at.append(time.perf_counter())
        self.done.release()
        return Response(json.dumps(self.body), content_type="application/json")(environ, start_response)

    def wait(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.done.acquire(timeout=10), "the shadow was not called"


def primary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    request = Request(environ)
    data = request.get_data()
    document = {"id": 7, "path": request.path, "length": len(data), "body": data[:100].decode()}
    start_response("200 OK", JSON)
    return [json.dumps({"id": document["id"]}).encode()] if not data else [json.dumps(document).encode()]


def wait_for(condition: t.Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def evolution(mirror: Mirror, app: WSGIApplication = primary, **options: t.Any) -> BufferedClient:
    api = Api("orders", old="/v1/orders", new="/v2/orders", stage="transition",
              exemptions=[Exemption("X-SDK-Version", "<2")], mirror=mirror, **options)
    return BufferedClient(ProtocolEvolution(app, apis=[api]))


OLD_SDK = {"X-SDK-Version": "1.0.0"}


@pytest.fixture
def mirrors() -> t.Iterator[list[Mirror]]:
    made: list[Mirror] = []
    yield made
    for mirror in made:
        mirror.close(2)


def make(mirrors: list[Mirror], shadow: t.Any, **options: t.Any) -> Mirror:
    mirror = Mirror(shadow, **options)
    mirrors.append(mirror)
    return mirror


# -- the client never waits ------------------------------------------------------


def test_client_does_not_wait_for_a_slow_shadow_and_gets_its_own_answer(mirrors: list[Mirror]) -> None:
    shadow = Shadow(body={"id": 8}, hold=True)  # held until the client has its answer
    c = evolution(make(mirrors, shadow))
    started = time.perf_counter()
    response = c.get("/v1/orders?x=1", headers=OLD_SDK)
    client_done = time.perf_counter()
    assert response.status_code == 200 and response.json == {"id": 7}
    assert response.headers["Deprecation"] and response.headers["X-Protocol-Version"] == "1"
    assert shadow.started.wait(5) and not shadow.finished_at  # shadow still busy, client done
    shadow.release.set()
    shadow.wait()
    assert client_done < shadow.finished_at[0]
    assert client_done - started < 0.5
    assert shadow.requests == [
        {"method": "GET", "path": "/v2/orders", "query": "x=1", "body": b"", "mirror": "1"}
    ]


def test_redirected_requests_are_not_mirrored(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow)
    response = evolution(mirror).get("/v1/orders")
    assert response.status_code == 308
    assert mirror.report()["mirrored"] == 0 and mirror.pool_pid is None


def test_queue_full_drops_and_counts(mirrors: list[Mirror]) -> None:
    shadow = Shadow(hold=True)
    mirror = make(mirrors, shadow, workers=1, queue_size=1)
    c = evolution(mirror)
    assert c.get("/v1/orders", headers=OLD_SDK).status_code == 200
    assert shadow.started.wait(5)  # the worker holds job 1
    for _ in range(3):  # job 2 waits in the queue; jobs 3 and 4 find it full
        assert c.get("/v1/orders", headers=OLD_SDK).status_code == 200
    report = mirror.report()
    assert (report["mirrored"], report["dropped_queue_full"], report["queued"]) == (2, 2, 1)
    shadow.release.set()
    shadow.wait(2)
    wait_for(lambda: mirror.report()["compared"] == 2)


def test_share_and_methods_select_requests(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    draws = iter([0.2, 0.7, 0.49])
    mirror = make(mirrors, shadow, share=0.5, sample=lambda: next(draws))
    c = evolution(mirror)
    for _ in range(3):
        c.get("/v1/orders", headers=OLD_SDK)
    c.post("/v1/orders", headers=OLD_SDK, data=b"x")  # POST is not mirrored by default
    c.get("/v1/orders", headers={**OLD_SDK, "X-Graywsgi-Mirror": "1"})  # never mirror a mirror
    shadow.wait(2)
    assert mirror.report()["mirrored"] == 2


# -- bodies --------------------------------------------------------------------------


def test_body_is_copied_for_app_and_shadow(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow, methods=["POST"], max_body=1000)
    body = b'{"qty": 2}' + b" " * 500
    response = evolution(mirror).post("/v1/orders/3", data=body, headers=OLD_SDK)
    assert response.json == {"id": 7, "path": "/v1/orders/3", "length": len(body), "body": body[:100].decode()}
    shadow.wait()
    assert shadow.requests[0]["body"] == body and shadow.requests[0]["path"] == "/v2/orders/3"


def test_large_and_chunked_bodies_are_not_mirrored(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow, methods=["POST"], max_body=100)
    c = evolution(mirror)
    body = b"y" * 5000
    assert c.post("/v1/orders", data=body, headers=OLD_SDK).json["length"] == 5000  # app reads it all
    chunked = c.post("/v1/orders", data=b"abc", headers={**OLD_SDK, "Transfer-Encoding": "chunked"})
    assert chunked.status_code == 200
    report = mirror.report()
    assert report["skipped_body"] == 2 and report["mirrored"] == 0 and not shadow.requests


# -- comparison -------------------------------------------------------------------------


def test_differences_counted_logged_and_sampled(mirrors: list[Mirror], caplog: pytest.LogCaptureFixture) -> None:
    shadow = Shadow(body={"id": 7, "generated": "later"})
    mirror = make(mirrors, shadow, ignore_fields=["generated"], log_samples=1, keep_samples=2)
    c = evolution(mirror)
    with caplog.at_level(logging.WARNING, logger="graywsgi.mirror"):
        c.get("/v1/orders", headers=OLD_SDK)  # equal once "generated" is ignored
        shadow.wait()
        wait_for(lambda: mirror.report()["compared"] == 1)
        shadow.body = {"id": 9}
        for n in range(3):
            c.get(f"/v1/orders/{n}", headers=OLD_SDK)
        shadow.wait(3)
        wait_for(lambda: mirror.report()["compared"] == 4)
        # The counters are updated before the worker thread logs (outside its
        # lock): wait for the line, or a busy machine ends the capture first.
        wait_for(lambda: "differs from shadow" in caplog.text)
    report = mirror.report()
    assert (report["equal"], report["different"], report["differences"]) == (1, 3, {"body": 3})
    assert len(report["samples"]) == 2 and report["samples"][-1]["differences"] == ["JSON bodies differ"]
    assert caplog.text.count("differs from shadow") == 1  # log_samples bounds the log


def test_shadow_errors_are_counted(mirrors: list[Mirror]) -> None:
    def broken(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise RuntimeError("shadow bug")

    mirror = make(mirrors, broken)
    assert evolution(mirror).get("/v1/orders", headers=OLD_SDK).status_code == 200
    wait_for(lambda: mirror.report()["shadow_errors"] == 1)


def test_status_shows_the_report(mirrors: list[Mirror]) -> None:
    mirror = make(mirrors, Shadow())
    api = Api("orders", old="/v1/orders", new="/v2/orders", mirror=mirror)
    row = ProtocolEvolution(primary, apis=[api]).status()[0]
    assert row["mirror"]["mirrored"] == 0 and row["mirror"]["share"] == 1.0


# -- processes and shutdown -------------------------------------------------------------------


def test_pool_and_exit_hook_start_lazily(mirrors: list[Mirror], monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[t.Any] = []
    monkeypatch.setattr(mirror_module.atexit, "register", lambda *args: hooks.append(args))
    shadow = Shadow()
    mirror = make(mirrors, shadow)
    assert mirror.pool_pid is None and not hooks
    assert not [th for th in threading.enumerate() if th.name.startswith("graywsgi-mirror")]
    evolution(mirror).get("/v1/orders", headers=OLD_SDK)
    assert mirror.pool_pid == os.getpid() and len(hooks) == 1
    shadow.wait()


def test_pid_change_makes_a_new_pool(mirrors: list[Mirror], monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow)
    c = evolution(mirror)
    c.get("/v1/orders", headers=OLD_SDK)
    shadow.wait()
    wait_for(lambda: mirror.report()["compared"] == 1)
    parent = os.getpid()
    monkeypatch.setattr(mirror_module.os, "getpid", lambda: parent + 100000)
    assert mirror.pool_pid is None and mirror.report()["mirrored"] == 0  # a "child" starts from nothing
    c.get("/v1/orders", headers=OLD_SDK)
    shadow.wait()
    assert mirror.pool_pid == parent + 100000 and mirror.report()["mirrored"] == 1
    wait_for(lambda: mirror.report()["compared"] == 1)
    mirror.close(2)
    monkeypatch.undo()


def test_real_fork_starts_its_own_pool(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow)
    c = evolution(mirror)
    c.get("/v1/orders", headers=OLD_SDK)  # the parent's pool is running
    shadow.wait()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            c.get("/v1/orders", headers=OLD_SDK)
            shadow.wait()
            deadline = time.monotonic() + 5
            while mirror.report()["compared"] != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            if mirror.pool_pid == os.getpid() and mirror.report()["compared"] == 1 and mirror.close(2):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    wait_for(lambda: mirror.report()["compared"] == 1)  # the parent's counters are its own


def test_close_drains_with_a_bound(mirrors: list[Mirror]) -> None:
    shadow = Shadow(hold=True)
    mirror = make(mirrors, shadow, workers=1, queue_size=4)
    c = evolution(mirror)
    for _ in range(3):
        c.get("/v1/orders", headers=OLD_SDK)
    assert shadow.started.wait(5)
    started = time.monotonic()
    assert mirror.close(0.2) is False
    assert time.monotonic() - started < 2
    assert mirror.report()["dropped_at_close"] == 2
    shadow.release.set()
    c.get("/v1/orders", headers=OLD_SDK)  # closed: not mirrored any more, still served
    assert mirror.report()["mirrored"] == 3


def test_close_drains_pending_jobs(mirrors: list[Mirror]) -> None:
    shadow = Shadow()
    mirror = make(mirrors, shadow, workers=2)
    c = evolution(mirror)
    for _ in range(5):
        c.get("/v1/orders", headers=OLD_SDK)
    assert mirror.close(5) is True
    report = mirror.report()
    assert report["compared"] == 5 and report["dropped_at_close"] == 0


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"share": 1.5}, id="share above 1"),
        pytest.param({"workers": 0}, id="no workers"),
        pytest.param({"queue_size": True}, id="bool queue size"),
        pytest.param({"close_timeout": -1}, id="negative close timeout"),
    ],
)
def test_configuration_errors(options: dict[str, t.Any]) -> None:
    with pytest.raises(ConfigurationError):
        Mirror(Shadow(), **options)
    with pytest.raises(ConfigurationError):
        Mirror(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Mirror("ftp://shadow")


# -- real servers ---------------------------------------------------------------------------


class ShadowServer:
    """A werkzeug server on 127.0.0.1 running a Shadow, stopped at teardown."""

    def __init__(self, shadow: Shadow) -> None:
        self.shadow = shadow
        self.server = make_server("127.0.0.1", free_port(), shadow, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def shadow_server() -> t.Iterator[ShadowServer]:
    server = ShadowServer(Shadow(body={"id": 7}))
    yield server
    server.stop()


def test_upstream_shadow(mirrors: list[Mirror], shadow_server: ShadowServer) -> None:
    mirror = make(mirrors, shadow_server.url, methods=["POST"])
    response = evolution(mirror).post("/v1/orders/5?a=b", data=b"hello", headers=OLD_SDK)
    assert response.status_code == 200
    shadow_server.shadow.wait()
    wait_for(lambda: mirror.report()["compared"] == 1)
    assert shadow_server.shadow.requests == [
        {"method": "POST", "path": "/v2/orders/5", "query": "a=b", "body": b"hello", "mirror": "1"}
    ]
    assert mirror.report()["different"] == 1  # the shadow answers {"id": 7} without the echo


GUNICORN_APP = """
import json, os
from graywsgi.evolution.stages import Api, Exemption, ProtocolEvolution
from graywsgi.evolution.mirror import Mirror

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/report":
        body = json.dumps(MIRROR.report()).encode()
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length).decode()
        body = json.dumps({"id": 7, "path": path, "pid": os.getpid(), "body": data,
                           "query": environ.get("QUERY_STRING", "")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

MIRROR = Mirror(os.environ["SHADOW_URL"], ignore_fields=["path", "pid", "body", "query"])
application = ProtocolEvolution(app, apis=[
    Api("orders", old="/v1/orders", new="/v2/orders", stage="transition",
        exemptions=[Exemption("X-SDK-Version", "<2")], mirror=MIRROR)])
"""


def test_under_gunicorn(tmp_path: Path, shadow_server: ShadowServer) -> None:
    (tmp_path / "evolution_gunicorn_app.py").write_text(textwrap.dedent(GUNICORN_APP))
    server = Gunicorn("evolution_gunicorn_app:application", workers=2,
                      env={"SHADOW_URL": shadow_server.url}, extra=["--pythonpath", str(tmp_path)])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/v1/orders/1?q=2", body=b"payload")
        redirect = conn.getresponse()
        redirect.read()
        assert redirect.status == 308 and redirect.getheader("Location") == "/v2/orders/1?q=2"
        conn.request("POST", redirect.getheader("Location") or "", body=b"payload")
        followed = conn.getresponse()
        document = json.loads(followed.read())
        assert (document["path"], document["body"], document["query"]) == ("/v2/orders/1", "payload", "q=2")
        conn.close()
        pids = set()
        for n in range(6):
            status, served = server.get(f"/v1/orders/{n}", headers={"X-SDK-Version": "1.4.0"})
            assert status == 200 and served["path"] == f"/v1/orders/{n}"
            pids.add(served["pid"])
        shadow = shadow_server.shadow
        shadow.wait(6)
        assert sorted(r["path"] for r in shadow.requests) == [f"/v2/orders/{n}" for n in range(6)]
        assert {r["mirror"] for r in shadow.requests} == {"1"}
    finally:
        server.stop()
