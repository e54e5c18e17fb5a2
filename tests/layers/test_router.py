from __future__ import annotations

import json
import logging
import os
import threading
import time
import typing as t
from pathlib import Path

import pytest
from werkzeug.test import create_environ
from werkzeug.wrappers import Request, Response

from graywsgi import Extraction, FileStore, MemoryStore, Router, TrustPolicy, current
from graywsgi.core.context import Source
from graywsgi.errors import ConfigurationError
from graywsgi.core.hashing import fnv1a_32
from graywsgi.rules.routing import CompiledRules, Decision
from graywsgi.rules.model import Backend, Cluster, KeySpec, PathMatch, Rule, RuleSet
from graywsgi.httputil.trust import sign

from tests.conftest import BufferedClient
from tests.servers import serving

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def show(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    decision = environ.get("graywsgi.decision")
    body = {
        "route": current.route,
        "group": current.group,
        "rules_version": current.rules_version,
        "x_route_to": environ.get("HTTP_X_ROUTE_TO"),
        "x_group": environ.get("HTTP_X_GROUP"),
        "rule": decision.rule if decision else None,
        "gray_id": environ.get("HTTP_X_GRAY_ID"),
        "served_by": "app",
    }
    return Response(json.dumps(body), mimetype="application/json")(environ, start_response)


def named(name: str) -> t.Callable[..., t.Iterable[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return Response(json.dumps({"served_by": name, "route": current.route}))(environ, start_response)

    return app


HALF = RuleSet(
    id="half-v1",
    clusters={"stable": Cluster(group="control"), "canary": Cluster(group="treatment")},
    rules=(Rule(name="api", path=PathMatch(prefix="/api"), split=(Backend("canary", 50),)),),
)


def get(client: BufferedClient, path: str = "/api/x", **headers: str) -> dict[str, t.Any]:
    response = client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert response.status_code == 200, response.data
    return dict(json.loads(response.data))


def canary_and_stable_ids(percent: int) -> tuple[str, str]:
    ids = [f"user-{n}" for n in range(200)]
    canary = next(i for i in ids if fnv1a_32(i) % 100 < percent)
    stable = next(i for i in ids if fnv1a_32(i) % 100 >= percent)
    return canary, stable


CANARY_ID, STABLE_ID = canary_and_stable_ids(50)


def test_annotate_records_route_group_and_version() -> None:
    client = BufferedClient(Extraction(Router(show, HALF)))
    body = get(client, X_Gray_ID=CANARY_ID)
    assert body == {
        "route": "canary", "group": "treatment", "rules_version": "half-v1", "x_route_to": "canary",
        "x_group": "treatment", "rule": "api", "gray_id": CANARY_ID, "served_by": "app",
    }
    body = get(client, X_Gray_ID=STABLE_ID)
    assert (body["route"], body["group"]) == ("stable", "control")


def test_client_cannot_preset_group_header() -> None:
    rules = RuleSet(clusters={"stable": Cluster()}, id="x")
    body = get(BufferedClient(Extraction(Router(show, rules))), X_Group="vip")
    assert body["x_group"] is None and body["group"] is None


def test_dispatch_to_apps_by_route() -> None:
    client = BufferedClient(Extraction(Router(show, HALF, apps={"canary": named("canary-app")})))
    assert get(client, X_Gray_ID=CANARY_ID) == {"served_by": "canary-app", "route": "canary"}
    assert get(client, X_Gray_ID=STABLE_ID)["served_by"] == "app"


def test_no_match_404_problem_json() -> None:
    rules = RuleSet(clusters={"stable": Cluster()}, no_match="404",
                    rules=(Rule(name="api", path=PathMatch(prefix="/api")),))
    response = BufferedClient(Extraction(Router(show, rules))).get("/web")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(response.data)["status"] == 404


def test_standalone_router_extracts_its_own_context() -> None:
    assert get(BufferedClient(Router(show, HALF)), X_Gray_ID=CANARY_ID)["route"] == "canary"


def test_routing_error_fails_open_to_default(caplog: pytest.LogCaptureFixture) -> None:
    # CompiledRules is compiled where the fast path is built, so the engine's
    # failure comes from a subclass rather than from patching the class.
    class Broken(CompiledRules):
        def decide(self, *args: t.Any, **kwargs: t.Any) -> Decision:
            raise RuntimeError("engine bug")

    with caplog.at_level(logging.ERROR, logger="graywsgi.router"):
        body = get(BufferedClient(Extraction(Router(show, Broken(HALF)))), X_Gray_ID=CANARY_ID)
    assert body["route"] == "stable" and body["group"] == "control"
    assert "engine bug" in caplog.text


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        pytest.param({"rules": 42}, "rules must be", id="rules of wrong type"),
        pytest.param({"rules": HALF, "apps": {"canary": "not an app"}}, "not a WSGI application", id="bad app"),
        pytest.param({"rules": HALF, "proxy_timeout": 0}, "proxy_timeout", id="zero timeout"),
        pytest.param({"rules": "/nonexistent/rules.yaml"}, "cannot read the file", id="missing rule file"),
    ],
)
def test_bad_options(kwargs: dict[str, t.Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Router(show, **kwargs)


# --- trust ---------------------------------------------------------------------

STICKY = RuleSet(
    id="sticky",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(Rule(name="all", split=(Backend("canary", 50),)),),
    fallback_key=KeySpec("cookie", "sid"),
)


def trusted_client(remote_addr: str, **policy: t.Any) -> BufferedClient:
    trust = TrustPolicy(trusted_networks=["10.0.0.0/8"], **policy)
    client = BufferedClient(Extraction(Router(show, STICKY), trust=trust))
    client.environ_base = {"REMOTE_ADDR": remote_addr}
    return client


def test_spoofed_gray_headers_from_untrusted_address_are_stripped() -> None:
    client = trusted_client("203.0.113.9")
    body = get(client, X_Gray_ID=CANARY_ID, X_Traffic_Color="canary", X_Canary_Weight="1")
    assert body["gray_id"] is None  # removed before the app saw it
    assert body["route"] == "stable"  # no key at all: default
    # the service's own key still splits: a session id that hashes to canary
    sid = next(f"s{n}" for n in range(100) if fnv1a_32(f"s{n}") % 100 < 50)
    client.set_cookie("sid", sid)
    assert get(client, X_Gray_ID=STABLE_ID, X_Traffic_Color="stable")["route"] == "canary"


def test_query_gray_id_ignored_from_untrusted_address() -> None:
    assert get(trusted_client("203.0.113.9"), f"/?gray_id={CANARY_ID}")["route"] == "stable"


def test_trusted_network_is_honoured() -> None:
    client = trusted_client("10.1.2.3")
    assert get(client, X_Gray_ID=CANARY_ID)["route"] == "canary"
    assert get(client, X_Gray_ID=STABLE_ID, X_Traffic_Color="canary")["route"] == "canary"
    assert get(client, X_Gray_ID=STABLE_ID, X_Canary_Weight="1.0")["route"] == "canary"
    assert get(client, X_Gray_ID=CANARY_ID, X_Canary_Weight="0")["route"] == "stable"
    assert get(client, X_Gray_ID=CANARY_ID, X_Canary_Weight="banana")["route"] == "canary"  # ignored


def test_signed_headers_are_honoured_and_sources_recorded() -> None:
    seen: list[t.Any] = []

    def record(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(current._get_current_object())  # type: ignore[attr-defined]
        return show(environ, start_response)

    trust = TrustPolicy(signing_keys={"k1": "secret"})
    client = BufferedClient(Extraction(Router(record, STICKY), trust=trust))
    signature = sign("secret", "k1", {"X-Gray-ID": CANARY_ID}, int(time.time()))
    assert get(client, X_Gray_ID=CANARY_ID, X_Gray_Signature=signature)["route"] == "canary"
    assert seen[-1].sources["gray_id"] is Source.SIGNED
    forged = sign("wrong", "k1", {"X-Gray-ID": CANARY_ID}, int(time.time()))
    assert get(client, X_Gray_ID=CANARY_ID, X_Gray_Signature=forged)["route"] == "stable"


def test_canary_weight_ignored_without_trust_policy() -> None:
    client = BufferedClient(Extraction(Router(show, STICKY)))
    assert get(client, X_Gray_ID=STABLE_ID, X_Canary_Weight="1")["route"] == "stable"


# --- reload --------------------------------------------------------------------


def write_rules(path: Path, version: int, canary_weight: int = 100) -> None:
    """Atomically write rule set ``v<version>``: one rule named ``r<version>``."""
    text = (
        f"id: v{version}\n"
        "clusters: {stable: {}, canary: {}}\n"
        "rules:\n"
        f"  - name: r{version}\n"
        f"    split: [{{cluster: canary, weight: {canary_weight}}}]\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_store_checks_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write_rules(path, 1)
    clock = Clock()
    store = FileStore(path, check_interval=1.0, clock=clock)
    client = BufferedClient(Extraction(Router(show, store)))
    assert get(client, X_Gray_ID="u")["rules_version"] == "v1"
    write_rules(path, 2)
    clock.now = 0.999
    assert get(client, X_Gray_ID="u")["rules_version"] == "v1"
    clock.now = 1.0
    body = get(client, X_Gray_ID="u")
    assert (body["rules_version"], body["rule"]) == ("v2", "r2")


def test_invalid_file_keeps_last_good_and_logs_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    write_rules(path, 1)
    clock = Clock()
    store = FileStore(path, check_interval=0.5, clock=clock)
    path.write_text("clusters: {stable: {}}\nrules:\n  - name: x\n    split: [{cluster: nope, weight: 5}]\n")
    with caplog.at_level(logging.ERROR, logger="graywsgi.store"):
        for step in range(1, 6):
            clock.now = step
            assert store.current().version_id == "v1"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "rules.yaml:4: $.rules[0].split[0].cluster: unknown cluster 'nope'" in errors[0].getMessage()
    assert "keeping v1" in errors[0].getMessage()
    path.write_text("{{{ not yaml")
    clock.now = 10
    with caplog.at_level(logging.ERROR, logger="graywsgi.store"):
        assert store.current().version_id == "v1"
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
    write_rules(path, 3)
    clock.now = 20
    assert store.current().version_id == "v3"


def test_broken_file_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"clusters": {"stable": {}}, "rules": [{"name": "a", "mode": "sticky"}]}')
    with pytest.raises(ConfigurationError, match=r"rules.json:1: \$.rules\[0\].mode"):
        Router(show, path)


def test_memory_store_update_rejects_invalid_and_keeps_old() -> None:
    store = MemoryStore(HALF)
    with pytest.raises(ConfigurationError):
        store.update(RuleSet(clusters={"stable": Cluster()}, default_cluster="nope"))
    assert store.current().version_id == "half-v1"
    store.update(RuleSet(clusters={"stable": Cluster()}, id="v2"))
    assert store.current().version_id == "v2"


def test_concurrent_reload_under_load_every_request_sees_one_version(tmp_path: Path) -> None:
    """Threads hammer the router while the file is rewritten many times."""
    path = tmp_path / "rules.yaml"
    write_rules(path, 0)
    store = FileStore(path, check_interval=0.001)
    mismatches: list[tuple[object, ...]] = []
    versions_seen: set[str] = set()
    lock = threading.Lock()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        decision = environ["graywsgi.decision"]
        version = current.rules_version
        with lock:
            versions_seen.add(version)
            # the rule that decided and the version id come from one rule set
            if decision.rule != "r" + version[1:]:
                mismatches.append((decision.rule, version))
        return Response("ok")(environ, start_response)

    wrapped = Extraction(Router(app, store))
    stop = threading.Event()
    counts = [0] * 4

    def hammer(n: int) -> None:
        environ = create_environ("/", headers={"X-Gray-ID": f"user-{n}"})
        while not stop.is_set():
            result = wrapped(dict(environ), lambda s, h, e=None: lambda b: None)
            b"".join(result)
            result.close()  # type: ignore[attr-defined]
            counts[n] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in range(1, 31):
            write_rules(path, version)
            store.reload()
        deadline = time.monotonic() + 10
        while "v30" not in versions_seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert mismatches == []
    assert sum(counts) > 100
    assert "v30" in versions_seen and len(versions_seen) > 5


# --- proxy mode ------------------------------------------------------------------


def upstream_app(name: str) -> t.Callable[..., t.Iterable[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        request = Request(environ)
        data = request.get_data()
        body = json.dumps({
            "upstream": name,
            "path": request.full_path,
            "x_route_to": request.headers.get("X-Route-To"),
            "bytes": len(data),
        })
        return Response(body, mimetype="application/json")(environ, start_response)

    return app


@pytest.fixture
def upstreams() -> t.Iterator[dict[str, int]]:
    with serving({name: upstream_app(name) for name in ("old", "new")}) as ports:
        yield ports


def test_proxy_mode_routes_to_upstreams(upstreams: dict[str, int]) -> None:
    rules = RuleSet(
        clusters={
            "stable": Cluster(upstream=f"http://127.0.0.1:{upstreams['old']}"),
            "canary": Cluster(upstream=f"http://127.0.0.1:{upstreams['new']}"),
        },
        rules=(Rule(name="all", split=(Backend("canary", 50),)),),
    )
    client = BufferedClient(Extraction(Router(show, rules)))
    payload = os.urandom(3 * 1024 * 1024)
    for gray_id, expected in ((CANARY_ID, "new"), (STABLE_ID, "old")):
        response = client.post("/orders?x=1", data=payload, headers={"X-Gray-ID": gray_id})
        assert response.status_code == 200
        body = json.loads(response.data)
        assert body == {"upstream": expected, "path": "/orders?x=1", "x_route_to": body["x_route_to"],
                        "bytes": len(payload)}
        assert body["x_route_to"] == ("canary" if expected == "new" else "stable")


def test_proxy_mode_upstream_down_is_502(upstreams: dict[str, int]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    rules = RuleSet(clusters={"stable": Cluster(upstream=f"http://127.0.0.1:{dead_port}")})
    response = BufferedClient(Extraction(Router(show, rules))).get("/")
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/problem+json"
