"""``graywsgi rollout`` and ``graywsgi simulate`` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import typing as t
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.layers.guard import Guard
from graywsgi.state.rollout_state import FileStateStore

from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RULES = """
clusters: {stable: {}, canary: {}}
rules:
  - name: checkout
    split: [{cluster: canary, weight: 0}]
plan:
  rule: checkout
  cluster: canary
  steps:
    - {name: dark-launch, weight: 0}
    - {name: first-slice, weight: 50}
    - {name: full, weight: 100, gate: {min_requests: 5, max_error_rate_diff: 0.01}}
"""


def graywsgi(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graywsgi", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return str(rules), str(tmp_path / "state.json")


def test_status_start_pause_resume_promote_rollback(files: tuple[str, str]) -> None:
    rules, state = files
    status = graywsgi("rollout", "status", "--rules", rules, "--state", state, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "not_started"
    assert graywsgi("rollout", "pause", "--rules", rules, "--state", state).returncode == 1
    started = graywsgi("rollout", "start", "--rules", rules, "--state", state, "--actor", "alice")
    assert started.returncode == 0 and "-> 1. dark-launch" in started.stdout
    assert graywsgi("rollout", "pause", "--rules", rules, "--state", state).returncode == 0
    assert graywsgi("rollout", "resume", "--rules", rules, "--state", state).returncode == 0
    promoted = graywsgi("rollout", "promote", "--rules", rules, "--state", state, "--json")
    assert json.loads(promoted.stdout)["weight"] == 100.0
    rolled = graywsgi("rollout", "rollback", "--rules", rules, "--state", state, "--actor", "bob")
    assert rolled.returncode == 0 and "kill switch SET" in rolled.stdout
    worker_view = FileStateStore(state, check_interval=0).current()
    assert worker_view.killed and worker_view.plan is not None and worker_view.plan.actor == "bob"


def test_advance_without_a_serving_worker_exits_3(files: tuple[str, str]) -> None:
    rules, state = files
    graywsgi("rollout", "start", "--rules", rules, "--state", state)
    result = graywsgi("rollout", "advance", "--rules", rules, "--state", state, "--wait", "1")
    assert result.returncode == 3
    assert "no worker checked the gate" in result.stderr


def ok(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response("ok")(environ, start_response)


def failing(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return Response("no", status=500)(environ, start_response)


class ServingWorker:
    """A worker in a thread: a Router with a guard on the shared state, under traffic."""

    def __init__(self, rules: str, state: str, canary: t.Callable[..., t.Iterable[bytes]]) -> None:
        self.guard = Guard(state=FileStateStore(state, check_interval=0), retry_on_stable=False)
        self.router = Router(ok, rules, apps={"canary": canary}, guard=self.guard)
        self.client = BufferedClient(Extraction(self.router))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve)

    def _serve(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.client.get("/", headers={"X-Gray-ID": f"user-{n % 50}"})
            n += 1

    def __enter__(self) -> ServingWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_advance_refused_by_the_gate_explains_itself(files: tuple[str, str]) -> None:
    rules, state = files
    graywsgi("rollout", "start", "--rules", rules, "--state", state)
    graywsgi("rollout", "advance", "--rules", rules, "--state", state, "--force")  # 50 % canary
    with ServingWorker(rules, state, failing):
        # the gate of "full" compares the failing canary with stable
        result = graywsgi("rollout", "advance", "--rules", rules, "--state", state, "--wait", "20")
    assert result.returncode == 1, result.stderr
    assert "gate failed: the canary breaker is open" in result.stderr or (
        "gate failed: canary error rate 100.0 % vs stable 0.0 %, margin 1 %" in result.stderr
    )


def test_advance_through_a_healthy_worker(files: tuple[str, str]) -> None:
    rules, state = files
    graywsgi("rollout", "start", "--rules", rules, "--state", state)
    graywsgi("rollout", "advance", "--rules", rules, "--state", state, "--force")
    with ServingWorker(rules, state, ok):
        result = graywsgi("rollout", "advance", "--rules", rules, "--state", state, "--wait", "20", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step_name"] == "full"


def test_simulate_shares_per_step(files: tuple[str, str], tmp_path: Path) -> None:
    rules, _ = files
    result = graywsgi("simulate", "--rules", rules, "--generate", "4000", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["flipped_back"] == 0 and report["ids"] == 4000
    shares = {row["scenario"]: row["shares"] for row in report["rows"]}
    assert shares["configured"] == {"stable": 1.0}
    assert abs(shares["step 2 first-slice"]["canary"] - 0.5) < 0.03
    assert shares["step 3 full"] == {"canary": 1.0}
    ids = tmp_path / "ids.txt"
    ids.write_text("alice\nbob\n\ncarol\n")
    table = graywsgi("simulate", "--rules", rules, "--ids", str(ids))
    assert "3 ids" in table.stdout and "no user flips back" in table.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        pytest.param(["simulate", "--rules", "/nonexistent.yaml"], "cannot read the file", id="missing rules"),
        pytest.param(["simulate", "--rules", "RULES", "--header", "nocolon"], "use NAME:VALUE", id="bad header"),
        pytest.param(["rollout", "status", "--rules", "RULES", "--state", "/nonexistent/s.json"], "does not exist",
                     id="bad state location"),
    ],
)
def test_errors_exit_1(files: tuple[str, str], args: list[str], fragment: str) -> None:
    args = [files[0] if a == "RULES" else a for a in args]
    result = graywsgi(*args)
    assert result.returncode == 1 and fragment in result.stderr


def test_rollout_needs_a_plan(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("clusters: {stable: {}}\n")
    result = graywsgi("rollout", "status", "--rules", str(rules), "--state", str(tmp_path / "s.json"))
    assert result.returncode == 1 and "no plan" in result.stderr
