from __future__ import annotations

import base64
import hashlib
import logging
import re
import typing as t
from pathlib import Path

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from graywsgi import Router
from graywsgi.rollout.admin import (
    COOKIE_NAME,
    HISTORY_SIZE,
    SESSION_SECONDS,
    AdminApp,
    RolloutControl,
)
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.rules.files import parse_rules
from graywsgi.errors import ConfigurationError, GrayError
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet
from graywsgi.state.rollout_state import FileStateStore, MemoryStateStore, RolloutState, StateStore

from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN = "admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM = "application/problem+json"

RULES = RuleSet(
    id="r7",
    clusters={"stable": Cluster(), "canary": Cluster()},
    rules=(
        Rule(name="checkout", hosts=("shop.example.com",), path=PathMatch(prefix="/checkout"),
             factors={"host": 0.5}, split=(Backend("canary", 20),)),
        Rule(name="everything", split=(Backend("canary", 10),)),
    ),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def answer(name: str) -> t.Callable[[WSGIEnvironment, StartResponse], t.Iterable[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        status = 500 if environ.get("HTTP_X_FAIL") else 200
        return Response(name, status=status)(environ, start_response)

    return app


class Setup(t.NamedTuple):
    router: Router
    admin: AdminApp
    state: FileStateStore
    clock: Clock
    client: BufferedClient  # the admin app, mounted at /_gray
    traffic: BufferedClient  # the router


def build(tmp_path: Path, rules: RuleSet = RULES, **options: t.Any) -> Setup:
    state = FileStateStore(tmp_path / "state.json", check_interval=0)
    guard = Guard(policy=BreakerPolicy(min_requests=10, error_rate=0.5), state=state)
    router = Router(answer("stable"), rules, apps={"canary": answer("canary")}, guard=guard)
    clock = Clock()
    options.setdefault("token", TOKEN)
    admin = AdminApp(router, clock=clock, **options)
    client = BufferedClient(DispatcherMiddleware(router, {"/_gray": admin}))
    client.environ_base = {"REMOTE_ADDR": "192.0.2.7"}
    return Setup(router, admin, state, clock, client, BufferedClient(router))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return build(tmp_path)


def audit_records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str, str]]:
    return [
        (r.graywsgi_action, r.graywsgi_outcome, r.graywsgi_actor, r.graywsgi_remote_addr)
        for r in caplog.records
        if r.name == "graywsgi.audit"
    ]


def sign_in(setup: Setup) -> str:
    """Sign the test client in like a browser; return the session cookie value."""
    response = setup.client.get(f"/_gray/?token={TOKEN}")
    assert response.status_code == 303
    cookie = setup.client.get_cookie(COOKIE_NAME, path="/_gray/")
    assert cookie is not None
    return cookie.value


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]*)"', page)
    assert match is not None
    return match.group(1)


# -- authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, status, challenge",
    [
        pytest.param({}, 401, 'Bearer realm="graywsgi admin"', id="missing"),
        pytest.param({"Authorization": "Bearer wrong-token-0123456789abcd"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="wrong token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="token with a suffix"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="token prefix"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, 'Bearer realm="graywsgi admin"', id="basic scheme"),
        pytest.param({"Authorization": "Bearer "}, 401, 'Bearer realm="graywsgi admin"', id="empty bearer"),
        pytest.param({"Authorization": "Bearer tökén"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="non-ascii"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, 200, None, id="right token"),
        pytest.param({"Authorization": f"bearer  {TOKEN} "}, 200, None, id="scheme in lower case"),
    ],
)
@pytest.mark.parametrize("path", ["/_gray/status", "/_gray/"])
def test_auth_table(setup: Setup, path: str, headers: dict[str, str], status: int, challenge: str | None) -> None:
    response = setup.client.get(path, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.mimetype == PROBLEM
        assert response.headers["WWW-Authenticate"] == challenge
        assert response.json["status"] == 401
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="missing"), pytest.param({"Authorization": "Bearer nope-nope-nope-nope"}, id="wrong")],
)
def test_unauthenticated_action_changes_nothing_and_is_audited(
    setup: Setup, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", headers={**headers, "X-Actor": "mallory"})
    assert response.status_code == 401
    assert setup.state.fetch().revision == 0
    [(action, outcome, actor, remote)] = audit_records(caplog)
    assert (action, actor, remote) == ("rollback", "mallory", "192.0.2.7")
    assert outcome.startswith("denied: ")


@pytest.mark.parametrize("token", [pytest.param(None, id="None"), pytest.param("", id="empty")])
def test_no_token_disables_the_app(tmp_path: Path, token: str | None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        setup = build(tmp_path, token=token)
    warnings = [r for r in caplog.records if r.name == "graywsgi.admin"]
    assert len(warnings) == 1 and "disabled" in warnings[0].getMessage()
    assert not setup.admin.enabled
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for method, path in [("GET", "/_gray/"), ("GET", "/_gray/status"), ("POST", "/_gray/rollback"),
                             ("GET", f"/_gray/?token={TOKEN}"), ("GET", "/_gray/nope")]:
            response = setup.client.open(path, method=method, headers=AUTH)
            assert response.status_code == 404, path
            assert response.mimetype == PROBLEM
            assert "Set-Cookie" not in response.headers
    assert not [r for r in caplog.records if r.name.startswith("graywsgi")]  # warned once, at construction
    assert setup.state.fetch().revision == 0


def test_short_token_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.admin"):
        build(tmp_path, token="short")
    assert "shorter than 16" in caplog.text


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"token": "has space"}, "b64token", id="token with a space"),
        pytest.param({"token": "line\nbreak"}, "b64token", id="token with a newline"),
        pytest.param({"token": "tökén-0123456789abc"}, "b64token", id="non-ascii token"),
        pytest.param({"token": b"bytes-token-0123456789"}, "string", id="bytes token"),
        pytest.param({"state": "state.json"}, "StateStore", id="state not a store"),
        pytest.param({"rollout": object()}, "advance", id="rollout without methods"),
        pytest.param({"audit_logger": ""}, "logger", id="empty logger name"),
        pytest.param({"history": 0}, "history", id="no history"),
    ],
)
def test_bad_options_raise(tmp_path: Path, options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(tmp_path, **options)


def test_router_must_be_a_router() -> None:
    with pytest.raises(ConfigurationError, match="Router"):
        AdminApp(answer("x"), token=TOKEN)  # type: ignore[arg-type]


# -- routes and methods -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, status, allow",
    [
        pytest.param("GET", "/_gray/nope", 404, None, id="unknown path"),
        pytest.param("GET", "/_gray/status/", 404, None, id="trailing slash"),
        pytest.param("GET", "/_gray/rollback", 405, "POST", id="GET an action"),
        pytest.param("PUT", "/_gray/resume", 405, "POST", id="PUT an action"),
        pytest.param("POST", "/_gray/status", 405, "GET, HEAD", id="POST status"),
        pytest.param("DELETE", "/_gray/", 405, "GET, HEAD", id="DELETE the page"),
    ],
)
def test_unknown_path_and_wrong_method(setup: Setup, method: str, path: str, status: int, allow: str | None) -> None:
    response = setup.client.open(path, method=method, headers=AUTH)
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    assert response.json["status"] == status
    assert response.headers.get("Allow") == allow
    assert setup.state.fetch().revision == 0


def test_unknown_path_without_token_is_401(setup: Setup) -> None:
    assert setup.client.get("/_gray/nope").status_code == 401


def test_mount_point_without_slash_redirects(setup: Setup) -> None:
    response = setup.client.get("/_gray")
    assert response.status_code == 308
    assert response.headers["Location"] == "/_gray/"
    response = setup.client.get(f"/_gray?token={TOKEN}")
    assert response.headers["Location"] == f"/_gray/?token={TOKEN}"


def test_head(setup: Setup) -> None:
    response = setup.client.head("/_gray/status", headers=AUTH)
    assert response.status_code == 200
    assert response.data == b""


def test_mounted_at_the_root(tmp_path: Path) -> None:
    setup = build(tmp_path)
    client = BufferedClient(setup.admin)
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Path=/;" in response.headers["Set-Cookie"]
    assert client.get("/").status_code == 200


# -- browser sign-in and CSRF -------------------------------------------------------


def test_sign_in_sets_a_safe_cookie_and_drops_the_token(setup: Setup) -> None:
    response = setup.client.get(f"/_gray/?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/_gray/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_gray/" in cookie
    assert f"Max-Age={SESSION_SECONDS}" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert TOKEN not in cookie
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    page = setup.client.get("/_gray/")  # the cookie authenticates GET
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert setup.client.get("/_gray/status").status_code == 200


def test_sign_in_over_https_sets_a_secure_cookie(setup: Setup) -> None:
    response = setup.client.get(f"/_gray/?token={TOKEN}", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("/_gray/?token=wrong-token-0123456789", id="wrong token"),
        pytest.param(f"/_gray/?token={TOKEN}&token=other", id="two tokens"),
        pytest.param("/_gray/?token=", id="empty token"),
    ],
)
def test_sign_in_with_a_bad_token(setup: Setup, url: str) -> None:
    response = setup.client.get(url)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert setup.client.get("/_gray/").status_code == 401


def test_query_token_works_only_for_the_page(setup: Setup) -> None:
    assert setup.client.get(f"/_gray/status?token={TOKEN}").status_code == 401
    assert setup.client.post(f"/_gray/rollback?token={TOKEN}").status_code == 401
    assert setup.state.fetch().revision == 0


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda value: value[:-1] + ("A" if value[-1] != "A" else "B"), id="mac changed"),
        pytest.param(lambda value: str(int(value.split(".")[0]) + 10**6) + "." + value.split(".")[1],
                     id="expiry extended"),
        pytest.param(lambda value: TOKEN, id="the token itself"),
        pytest.param(lambda value: "", id="empty"),
    ],
)
def test_forged_session_cookie_is_refused(setup: Setup, tamper: t.Callable[[str], str]) -> None:
    value = sign_in(setup)
    setup.client.set_cookie(COOKIE_NAME, tamper(value), path="/_gray/")
    response = setup.client.get("/_gray/status")
    assert response.status_code == 401


def test_session_expires(setup: Setup) -> None:
    sign_in(setup)
    setup.clock.now += SESSION_SECONDS - 1
    assert setup.client.get("/_gray/status").status_code == 200
    setup.clock.now += 2
    response = setup.client.get("/_gray/status")
    assert response.status_code == 401
    assert "expired" in response.json["detail"]


def test_session_of_another_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    value = sign_in(build(tmp_path / "a"))
    second = build(tmp_path / "b", token="another-token-0123456789abcdef")
    second.client.set_cookie(COOKIE_NAME, value, path="/_gray/")
    assert second.client.get("/_gray/status").status_code == 401


def test_cookie_action_needs_the_csrf_token(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    sign_in(setup)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        missing = setup.client.post("/_gray/rollback")
        wrong = setup.client.post("/_gray/rollback", data={"csrf": "x" * 43})
        wrong_header = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": "x" * 43})
    assert [missing.status_code, wrong.status_code, wrong_header.status_code] == [403, 403, 403]
    assert missing.mimetype == PROBLEM
    assert setup.state.fetch().revision == 0
    assert [outcome.split(":")[0] for _, outcome, _, _ in audit_records(caplog)] == ["denied"] * 3


@pytest.mark.parametrize("how", ["form", "header"])
def test_cookie_action_with_the_page_csrf_token(setup: Setup, how: str, caplog: pytest.LogCaptureFixture) -> None:
    sign_in(setup)
    csrf = csrf_of(setup.client.get("/_gray/").text)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        if how == "form":
            response = setup.client.post("/_gray/rollback", data={"csrf": csrf}, headers={"X-Actor": "ada"})
        else:
            response = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": csrf, "X-Actor": "ada"})
    assert response.status_code == 200
    assert setup.state.fetch().killed
    assert audit_records(caplog) == [("rollback", "ok", "ada", "192.0.2.7")]


def test_csrf_token_is_bound_to_the_session(setup: Setup) -> None:
    sign_in(setup)
    csrf = csrf_of(setup.client.get("/_gray/").text)
    setup.clock.now += 1
    sign_in(setup)  # a new session cookie (another expiry)
    response = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403


def test_oversized_form_is_refused(setup: Setup) -> None:
    sign_in(setup)
    response = setup.client.post("/_gray/rollback", data={"csrf": "x", "pad": "y" * 100_000})
    assert response.status_code == 413
    assert setup.state.fetch().revision == 0


def test_bearer_action_needs_no_csrf_even_with_a_cookie(setup: Setup) -> None:
    sign_in(setup)
    assert setup.client.post("/_gray/rollback", headers=AUTH).status_code == 200


def test_wrong_bearer_is_not_rescued_by_a_cookie(setup: Setup) -> None:
    sign_in(setup)
    response = setup.client.get("/_gray/status", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
    assert response.status_code == 401


# -- actions ------------------------------------------------------------------------


def test_rollback_and_resume_change_the_state_store(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    assert setup.traffic.get("/", headers={"X-Gray-ID": "user-0"}).text in ("stable", "canary")
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", headers={**AUTH, "X-Actor": "ada"})
    assert response.status_code == 200
    body = response.json
    assert body["action"] == "rollback" and body["outcome"] == "ok" and body["actor"] == "ada"
    assert body["changed"] is True
    assert body["kill_switch"]["killed"] is True
    assert body["kill_switch"]["reason"] == "rolled back by ada from the admin app"
    on_disk = RolloutState.from_json(Path(setup.state.path).read_bytes())
    assert on_disk.killed and on_disk.reason == "rolled back by ada from the admin app"
    # The router sees it: canary users are served by stable now.
    assert {setup.traffic.get("/", headers={"X-Gray-ID": f"user-{i}"}).text for i in range(50)} == {"stable"}

    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        again = setup.client.post("/_gray/rollback", headers=AUTH)
        resumed = setup.client.post("/_gray/resume", headers=AUTH)
    assert again.json["changed"] is False
    assert resumed.status_code == 200 and resumed.json["kill_switch"]["killed"] is False
    assert not FileStateStore(setup.state.path).fetch().killed
    assert audit_records(caplog) == [
        ("rollback", "ok", "ada", "192.0.2.7"),
        ("rollback", "ok", "unknown", "192.0.2.7"),
        ("resume", "ok", "unknown", "192.0.2.7"),
    ]
    record = [r for r in caplog.records if r.name == "graywsgi.audit"][0]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "graywsgi admin rollback by ada from 192.0.2.7: ok"


def test_audit_logger_name_is_configurable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, audit_logger="myapp.audit")
    with caplog.at_level(logging.WARNING):
        setup.client.post("/_gray/rollback", headers=AUTH)
    assert [r.name for r in caplog.records if "admin rollback" in r.getMessage()] == ["myapp.audit"]


@pytest.mark.parametrize(
    "header, actor",
    [
        pytest.param("ada\r\nforged: line", "adaforged: line", id="control characters dropped"),
        pytest.param("  ", "unknown", id="blank"),
        pytest.param("x" * 500, "x" * 100, id="truncated"),
    ],
)
def test_actor_is_cleaned(setup: Setup, header: str, actor: str, caplog: pytest.LogCaptureFixture) -> None:
    environ = {"HTTP_X_ACTOR": header, "HTTP_AUTHORIZATION": AUTH["Authorization"], "REMOTE_ADDR": "192.0.2.7"}
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", environ_overrides=environ)
    assert response.json["actor"] == actor
    assert audit_records(caplog) == [("rollback", "ok", actor, "192.0.2.7")]


def test_explicit_state_store(tmp_path: Path) -> None:
    other = MemoryStateStore()
    setup = build(tmp_path, state=other)
    setup.client.post("/_gray/rollback", headers=AUTH)
    assert other.current().killed
    assert not setup.state.fetch().killed


def test_no_state_store_refuses_rollback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    router = Router(answer("stable"), RULES)
    client = BufferedClient(AdminApp(router, token=TOKEN))
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = client.post("/rollback", headers=AUTH)
    assert response.status_code == 409
    assert response.mimetype == PROBLEM and "no state store" in response.json["detail"]
    assert response.json["outcome"] == "refused"
    assert [(a, o.split(":")[0]) for a, o, _, _ in audit_records(caplog)] == [("rollback", "refused")]
    status = client.get("/status", headers=AUTH).json
    assert status["kill_switch"] is None
    assert status["routes"]["canary"]["window"] is None
    page = client.get("/", headers=AUTH).text
    assert "Kill switch: not available" in page and 'id="rollback-button"' not in page


class BrokenStore(StateStore):
    def current(self) -> RolloutState:
        return RolloutState()

    def fetch(self) -> RolloutState:
        raise ConnectionError("redis is down")

    def _update(self, change: t.Callable[[RolloutState], RolloutState]) -> RolloutState:
        raise ConnectionError("redis is down")


def test_failing_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, state=BrokenStore())
    with caplog.at_level(logging.WARNING):
        response = setup.client.post("/_gray/rollback", headers=AUTH)
    assert response.status_code == 503
    assert "redis is down" in response.json["detail"]
    assert audit_records(caplog) == [("rollback", "error: ConnectionError: redis is down", "unknown", "192.0.2.7")]
    status = setup.client.get("/_gray/status", headers=AUTH).json
    assert status["kill_switch"]["killed"] is None
    assert "redis is down" in status["kill_switch"]["error"]
    assert "Kill switch: unknown" in setup.client.get("/_gray/", headers=AUTH).text


class FakeRollout:
    def __init__(self) -> None:
        self.step = 1
        self.refuse = ""
        self.actors: list[str] = []

    def status(self) -> dict[str, t.Any]:
        return {"step": self.step, "steps": ["dark", "1 %", "<b>25 %</b>"], "status": "running",
                "note": "<script>alert('rollout')</script>"}

    def advance(self, actor: str) -> dict[str, t.Any]:
        self.actors.append(actor)
        if self.refuse:
            raise GrayError(self.refuse)
        self.step += 1
        return self.status()


def test_fake_rollout_is_a_rollout_control() -> None:
    assert isinstance(FakeRollout(), RolloutControl)


def test_advance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rollout = FakeRollout()
    setup = build(tmp_path, rollout=rollout)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        ok = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "ada"})
        rollout.refuse = "gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %"
        refused = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "bob"})
    assert ok.status_code == 200 and ok.json["rollout"]["step"] == 2
    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    assert refused.json["detail"] == "gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %"
    assert rollout.actors == ["ada", "bob"]
    assert audit_records(caplog) == [
        ("advance", "ok", "ada", "192.0.2.7"),
        ("advance", "refused: gate failed: canary error rate 4.1 % vs stable 0.3 %, margin 1 %", "bob", "192.0.2.7"),
    ]
    assert setup.client.get("/_gray/status", headers=AUTH).json["rollout"]["step"] == 2


class CrashingRollout(FakeRollout):
    def advance(self, actor: str) -> dict[str, t.Any]:
        raise ZeroDivisionError("division by zero")


def test_advance_error_is_503(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, rollout=CrashingRollout())
    with caplog.at_level(logging.WARNING):
        response = setup.client.post("/_gray/advance", headers=AUTH)
    assert response.status_code == 503
    assert audit_records(caplog)[0][1] == "error: ZeroDivisionError: division by zero"


def test_advance_without_a_plan(setup: Setup) -> None:
    response = setup.client.post("/_gray/advance", headers=AUTH)
    assert response.status_code == 409 and "no rollout plan" in response.json["detail"]
    assert setup.client.get("/_gray/status", headers=AUTH).json["rollout"] is None


PLAN_YAML = """
id: plan-1
clusters: {stable: {}, canary: {}}
rules:
  - name: checkout
    split: [{cluster: canary, weight: 0}]
plan:
  rule: checkout
  cluster: canary
  steps:
    - {name: dark-launch, weight: 0}
    - {name: first-slice, weight: 1}
    - {name: five, weight: 5, gate: {min_requests: 10, max_error_rate_diff: 0.01}}
"""


def test_advance_the_router_plan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, rules=parse_rules(PLAN_YAML, filename="rules.yaml").ruleset)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        not_started = setup.client.post("/_gray/advance", headers=AUTH)
        assert setup.router.rollout is not None
        setup.router.rollout.start("ops")
        advanced = setup.client.post("/_gray/advance", headers={**AUTH, "X-Actor": "ada"})
        gated = setup.client.post("/_gray/advance", headers=AUTH)
    assert not_started.status_code == 409 and "not started" in not_started.json["detail"]
    assert advanced.status_code == 200
    assert advanced.json["rollout"]["step"] == 1 and advanced.json["rollout"]["step_name"] == "first-slice"
    assert gated.status_code == 409
    assert gated.json["detail"].startswith("gate failed: canary has 0 requests in the window, 10 needed")
    assert [o.split(":")[0] for _, o, _, _ in audit_records(caplog)] == ["refused", "ok", "refused"]
    status = setup.client.get("/_gray/status", headers=AUTH).json
    assert status["rollout"]["step_name"] == "first-slice"
    assert status["rules"][0]["shares"] == {"canary": 1.0, "stable": 99.0}  # the plan's weight, not the rule's 0


# -- the status document ------------------------------------------------------------


def test_status_shape(setup: Setup) -> None:
    status = setup.client.get("/_gray/status", headers=AUTH)
    assert status.mimetype == "application/json"
    body = status.json
    assert set(body) == {"generated_at", "rules_version", "default_cluster", "clusters", "no_match",
                         "kill_switch", "rollout", "protocol_evolution", "trip_error_rate", "routes", "rules"}
    assert body["rules_version"] == "r7" and body["default_cluster"] == "stable"
    assert body["clusters"] == ["canary", "stable"]
    assert body["kill_switch"] == {"killed": False, "reason": "", "since": None, "revision": 0}
    assert body["trip_error_rate"] == 0.5
    assert list(body["routes"]) == ["stable", "canary"]
    assert body["routes"]["canary"] == {
        "default": False, "breaker": None, "shared": None, "taking_traffic": True, "why_not": "",
        "window": {"requests": 0, "errors": 0, "slow": 0, "error_rate": 0.0, "slow_rate": 0.0},
        "error_rate_history": [[setup.clock.now, None]],
    }
    assert body["rules"] == [
        {"name": "checkout", "mode": "hash", "factor": 0.5,
         "shares": {"canary": 10.0, "stable": 90.0}, "in_force": {"canary": 10.0, "stable": 90.0}},
        {"name": "everything", "mode": "hash", "factor": 1.0,
         "shares": {"canary": 10.0, "stable": 90.0}, "in_force": {"canary": 10.0, "stable": 90.0}},
    ]


def canary_users(n: int, canary: bool = True) -> list[str]:
    """Gray ids the 10 % "everything" rule sends to canary (or, ``canary=False``, not)."""
    from graywsgi.core.hashing import fnv1a_32

    return [f"user-{i}" for i in range(1000) if (fnv1a_32(f"user-{i}".encode()) % 100 < 10) == canary][:n]


def test_status_windows_breakers_and_shares_in_force(setup: Setup) -> None:
    users = canary_users(6)
    for user in users:
        assert setup.traffic.get("/", headers={"X-Gray-ID": user}).text == "canary"
    for i, user in enumerate(canary_users(4, canary=False)):
        setup.traffic.post("/", headers={"X-Gray-ID": user, "X-Fail": "1" if i == 0 else ""})
    body = setup.admin.status()
    canary = body["routes"]["canary"]
    assert canary["breaker"]["state"] == "closed"
    assert canary["window"]["requests"] == 6 and canary["window"]["error_rate"] == 0.0
    assert "mean_latency_seconds" in canary["window"]
    stable = body["routes"]["stable"]
    assert stable["breaker"] is None and stable["default"] is True
    assert stable["window"]["requests"] == 4 and stable["window"]["error_rate"] == 0.25

    for user in canary_users(20):  # POSTs are not retried: canary failures trip the breaker
        setup.traffic.post("/", headers={"X-Gray-ID": user, "X-Fail": "1"})
    body = setup.admin.status()
    canary = body["routes"]["canary"]
    assert canary["breaker"]["state"] == "open"
    assert canary["shared"]["open"] is True
    assert canary["taking_traffic"] is False and canary["why_not"] == "breaker open"
    assert body["rules"][1]["in_force"] == {"canary": 0.0, "stable": 100.0}
    assert body["rules"][1]["shares"] == {"canary": 10.0, "stable": 90.0}


def test_status_after_rollback(setup: Setup) -> None:
    setup.client.post("/_gray/rollback", headers=AUTH)
    body = setup.client.get("/_gray/status", headers=AUTH).json
    assert body["kill_switch"]["killed"] is True and body["kill_switch"]["revision"] == 1
    assert body["routes"]["canary"]["why_not"] == "kill switch set"
    assert [rule["in_force"] for rule in body["rules"]] == [{"canary": 0.0, "stable": 100.0}] * 2


def test_history_is_sampled_and_bounded(tmp_path: Path) -> None:
    setup = build(tmp_path, history=3)
    for _ in range(2):
        setup.admin.status()
    assert len(setup.admin.status()["routes"]["canary"]["error_rate_history"]) == 1  # same second: replaced
    for _ in range(5):
        setup.clock.now += 1
        history = setup.admin.status()["routes"]["canary"]["error_rate_history"]
    assert [when for when, _ in history] == [setup.clock.now - 2, setup.clock.now - 1, setup.clock.now]
    assert HISTORY_SIZE == 60


def test_history_forgets_removed_routes(tmp_path: Path) -> None:
    from graywsgi.state.rule_store import MemoryStore

    store = MemoryStore(RULES)
    router = Router(answer("stable"), store, guard=Guard())
    admin = AdminApp(router, token=TOKEN)
    assert set(admin.status()["routes"]) == {"stable", "canary"}
    store.update(RuleSet(clusters={"stable": Cluster(), "blue": Cluster()}))
    assert set(admin.status()["routes"]) == {"stable", "blue"}
    assert set(admin._history.sample(0.0, {})) == set()


# -- the page -----------------------------------------------------------------------

HOSTILE_ROUTE = "<script>alert('route')</script>"
HOSTILE_RULE = '"><img src=x onerror=alert(1)>'


def test_page_escapes_hostile_names(tmp_path: Path) -> None:
    rules = RuleSet(
        id="<i>v</i>",
        clusters={"stable": Cluster(), HOSTILE_ROUTE: Cluster()},
        rules=(Rule(name=HOSTILE_RULE, split=(Backend(HOSTILE_ROUTE, 30),)),),
    )
    state = MemoryStateStore()
    router = Router(answer("stable"), rules, guard=Guard(state=state))
    admin = AdminApp(router, token=TOKEN, rollout=FakeRollout())
    client = BufferedClient(admin)
    client.post("/rollback", headers={**AUTH, "X-Actor": "<b>mallory</b>"})
    page = client.get("/", headers=AUTH).text
    for hostile in (HOSTILE_ROUTE, HOSTILE_RULE, "<i>v</i>", "<b>mallory</b>", "<b>25 %</b>",
                    "<script>alert('rollout')</script>", "<img"):
        assert hostile not in page, hostile
    assert "&lt;script&gt;alert(&#x27;route&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "rolled back by &lt;b&gt;mallory&lt;/b&gt; from the admin app" in page
    assert page.count("<script>") == 1  # the page's own, nothing injected


def test_page_headers_and_csp(setup: Setup) -> None:
    response = setup.client.get("/_gray/", headers=AUTH)
    assert response.mimetype == "text/html" and response.mimetype_params["charset"] == "utf-8"
    for name, value in [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]:
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    page = response.text
    for tag in ("script", "style"):
        [content] = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # No external assets: no URL with a scheme or a protocol-relative one in any attribute.
    assert not re.search(r'(?:src|href|action)="(?:[a-z]+:|//)(?!,)', page)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_page_without_cookie_has_no_csrf_token(setup: Setup) -> None:
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert csrf_of(page) == ""


def test_page_shows_the_state_at_a_glance(setup: Setup) -> None:
    for user in canary_users(3):
        setup.traffic.get("/", headers={"X-Gray-ID": user, "X-Fail": "1"})
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert 'id="kill-switch">Kill switch: clear' in page
    assert '<tr data-route="canary">' in page and '<tr data-route="stable">' in page
    assert "canary 10 %, stable 90 %" in page
    assert 'class="chart"' in page
    assert "No rollout plan." in page
    setup.client.post("/_gray/rollback", headers=AUTH)
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert 'class="banner set" id="kill-switch">Kill switch: SET' in page
    assert "canary 0 %, stable 100 %" in page


def test_other_authorization_scheme_leaves_it_to_the_cookie(setup: Setup) -> None:
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}  # e.g. a proxy's own authentication
    assert setup.client.get("/_gray/status", headers=basic).status_code == 401
    sign_in(setup)
    assert setup.client.get("/_gray/status", headers=basic).status_code == 200
    assert setup.client.post("/_gray/rollback", headers=basic).status_code == 403  # still needs CSRF
