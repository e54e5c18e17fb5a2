"""Shared helpers of the graywsgi.rollout.admin tests: the token, the rules, a clock, an app set-up."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from graywsgi.core.breaker import BreakerPolicy
from graywsgi.errors import GrayError
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.rollout.admin.app import COOKIE_NAME, AdminApp
from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet
from graywsgi.state.rollout_state import FileStateStore

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


def canary_users(n: int, canary: bool = True) -> list[str]:
    """Gray ids the 10 % "everything" rule sends to canary (or, ``canary=False``, not)."""
    from graywsgi.core.hashing import fnv1a_32

    return [f"user-{i}" for i in range(1000) if (fnv1a_32(f"user-{i}".encode()) % 100 < 10) == canary][:n]


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
