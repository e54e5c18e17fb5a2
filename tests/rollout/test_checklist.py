"""graywsgi.checklist: loading, every kind against real things, scheduling, sign-off, report."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from graywsgi import Extraction, Router
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.rollout.checklist import (
    KINDS,
    ApproverError,
    Check,
    Checklist,
    CheckResult,
    CheckStatus,
    ProgressListener,
    RunningCheck,
    SignoffStatus,
    check_signoff,
    checklist_schema,
    load_checklist,
    parse_checklist,
    run_checklist,
)
from graywsgi.rules.files import ConfigFileError
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import FileStateStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "examples" / "checklists" / "golden.yaml"
REDIS_URL = "redis://127.0.0.1:6379/0"
HERE = "tests.rollout.test_checklist"  # this module, for python checks


# -- helpers ----------------------------------------------------------------------


def load(tmp_path: Path, text: str, name: str = "checklist.yaml") -> Checklist:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_checklist(path)


def run_one(tmp_path: Path, check_yaml: str, **kwargs: t.Any) -> CheckResult:
    """Run a checklist of one check (indented YAML mapping lines) and return its result."""
    checklist = load(tmp_path, "checks:\n  - name: only\n" + check_yaml)
    report = run_checklist(checklist, **kwargs)
    assert len(report.results) == 1
    return report.results[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gone_or_zombie(pid: int, within: float = 3.0) -> bool:
    """The process is gone (or dead and waiting for a reaper that is not us)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


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


def redis_location() -> t.Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Redis on 127.0.0.1:6379: {exc}")
        pytest.skip(f"no Redis on 127.0.0.1:6379 ({exc}); CI is unset")
    key = f"graywsgi-test:{uuid.uuid4().hex}"
    try:
        yield f"{REDIS_URL}#{key}"
    finally:
        client.delete(key)
        client.close()


@pytest.fixture
def redis_state() -> t.Iterator[str]:
    yield from redis_location()


# -- python checks called by the tests (module:function) ----------------------------------


def returns_true() -> bool:
    return True


def returns_false() -> bool:
    return False


def returns_reason(threshold: int, value: int) -> tuple[bool, str]:
    return value <= threshold, f"value {value} vs threshold {threshold}"


def raises() -> bool:
    raise RuntimeError("broker unreachable")


def returns_garbage() -> object:
    return {"ok": True}


not_callable = 42

HANG = threading.Event()


def hangs() -> bool:
    HANG.wait(30)
    return True


BARRIER: threading.Barrier | None = None


def meet_at_barrier() -> tuple[bool, str]:
    assert BARRIER is not None
    BARRIER.wait()
    return True, "met the other check"


ORDER: list[str] = []
ORDER_LOCK = threading.Lock()


def note(label: str, sleep: float = 0.0) -> bool:
    time.sleep(sleep)
    with ORDER_LOCK:
        ORDER.append(label)
    return True


# -- the file ---------------------------------------------------------------------


def test_schema_is_valid_and_lists_every_kind() -> None:
    schema = checklist_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert tuple(schema["$defs"]["check"]["properties"]["kind"]["enum"]) == KINDS


def test_golden_example_loads_with_the_seven_golden_checks() -> None:
    checklist = load_checklist(GOLDEN)
    assert checklist.requires_signoff is True
    names = [check.name for check in checklist.checks]
    for golden in (
        "schema-rolled-back",
        "cache-keys-cleared",
        "old-instances-deregistered",
        "consumer-offsets-reset",
        "external-api-compatible",
        "gray-switch-closed",
        "metrics-within-baseline",
    ):
        assert golden in names
    assert {check.kind for check in checklist.checks} == set(KINDS)
    metrics = checklist.check("metrics-within-baseline")
    assert metrics.options["max_deviation_percent"] == 10
    assert checklist.check("gray-switch-closed").depends_on == ("store-reachable",)


def test_json_checklist_loads(tmp_path: Path) -> None:
    document = {
        "requires_signoff": False,
        "checks": [{"name": "a", "kind": "shell", "timeout": 5, "command": ["true"]}],
    }
    checklist = load(tmp_path, json.dumps(document, indent=2), name="checklist.json")
    assert checklist.checks[0].name == "a" and checklist.checks[0].timeout == 5.0


CONFIG_ERRORS = [
    pytest.param("checks: []\n", r"checklist.yaml:1: \$\.checks: \[\] should be non-empty", id="no checks"),
    pytest.param("- a\n", r"checklist.yaml:1: \$: the top level must be a mapping", id="top level not a mapping"),
    pytest.param(
        "checks:\n  - name: a\n    kind: telnet\n    timeout: 1\n",
        r"checklist.yaml:3: \$\.checks\[0\]\.kind: 'telnet' is not one of \['http'",
        id="unknown kind",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    command: ['true']\n",
        r"checklist.yaml:2: \$\.checks\[0\]: 'timeout' is a required property",
        id="missing timeout",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: -1\n    command: [x]\n",
        r"checklist.yaml:4: \$\.checks\[0\]\.timeout: -1 is less than or equal to the minimum of 0",
        id="negative timeout",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    expect_stauts: 200\n",
        r"checklist.yaml:6: \$\.checks\[0\]: Additional properties are not allowed \('expect_stauts' was unexpected\)",
        id="misspelt option names its line",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: ftp://x/\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.url: 'ftp://x/' does not match",
        id="only http and https URLs",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: 'http://:80/'\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.url: 'http://:80/' is not an http:// or https:// URL with a host",
        id="URL without a host",
    ),
    pytest.param(
        "checks:\n  - {name: a, kind: shell, timeout: 1, command: [x]}\n  - {name: a, kind: shell, timeout: 1, command: [y]}\n",
        r"checklist.yaml:3: \$\.checks\[1\]\.name: duplicate check name 'a' \(also checks\[0\]\)",
        id="duplicate names",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    depends_on:\n      - b\n",
        r"checklist.yaml:7: \$\.checks\[0\]\.depends_on\[0\]: unknown check 'b' \(checks: a\)",
        id="unknown dependency",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    depends_on: [a]\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.depends_on\[0\]: a check cannot depend on itself",
        id="self dependency",
    ),
    pytest.param(
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 1, command: [x], depends_on: [c]}\n"
        "  - {name: b, kind: shell, timeout: 1, command: [x], depends_on: [a]}\n"
        "  - {name: c, kind: shell, timeout: 1, command: [x], depends_on: [b]}\n",
        r"checklist.yaml:2: \$\.checks\[0\]\.depends_on: dependency cycle: a -> c -> b -> a",
        id="dependency cycle",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: \"echo 'unclosed\"\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command: cannot split the command: No closing quotation",
        id="unsplittable command",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    output_match: '(unclosed'\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.output_match: invalid regular expression: missing \)",
        id="bad regex",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    json_field: a..b\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.json_field: 'a\.\.b' has an empty key",
        id="empty key in a path",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: gray_switch_closed\n    timeout: 1\n    state: http://example.com/state\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.state: 'http://example\.com/state': use a file path or redis://",
        id="state location",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: python\n    timeout: 1\n    callable: os.path.exists\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.callable: 'os\.path\.exists' does not match",
        id="callable needs module:function",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: metrics_within_baseline\n    timeout: 1\n    url: http://x/\n",
        r"checklist.yaml:2: \$\.checks\[0\]: 'route' is a required property",
        id="metrics needs a route",
    ),
    pytest.param(
        "requires_signoff: yes please\nchecks: [{name: a, kind: shell, timeout: 1, command: [x]}]\n",
        r"checklist.yaml:1: \$\.requires_signoff: 'yes please' is not of type 'boolean'",
        id="requires_signoff is a boolean",
    ),
    pytest.param(
        "checks:\n  - name: a\n    name: b\n",
        r"checklist.yaml:3: \$\.checks\[0\]: duplicate key 'name'",
        id="duplicate YAML key",
    ),
    pytest.param("checks: [\n", r"checklist.yaml:2: \$: invalid YAML", id="YAML syntax"),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [true]\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command\[0\]: True is not of type 'string' \(YAML reads unquoted",
        id="YAML boolean where a string is needed",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: 5\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command: 5 is not of type 'string' or 'array'",
        id="neither shape",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    json_field:\n      - a\n      - -1\n",
        r"checklist.yaml:8: \$\.checks\[0\]\.json_field\[1\]: -1 is less than the minimum of 0",
        id="the item that is wrong",
    ),
]


@pytest.mark.parametrize("text, message", CONFIG_ERRORS)
def test_config_errors_name_file_line_and_json_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "checklist.yaml"))


def test_json_errors_name_the_line(tmp_path: Path) -> None:
    text = '{\n  "checks": [\n    {"name": "a", "kind": "shell",\n     "timeout": "soon", "command": ["x"]}\n  ]\n}\n'
    with pytest.raises(ConfigFileError, match=r"checklist\.json:4: \$\.checks\[0\]\.timeout: 'soon' is not of type"):
        load(tmp_path, text, name="checklist.json")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = (
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 1, command: [x], depends_on: [nope]}\n"
        "  - {name: b, kind: shell, timeout: 1, command: [x], output_match: '('}\n"
    )
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text)
    assert len(caught.value.problems) == 2


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: \$: cannot read the file"):
        load_checklist(tmp_path / "missing.yaml")


# -- sign-off ---------------------------------------------------------------------

SIGNOFF_CASES = [
    pytest.param(True, [], SignoffStatus.MISSING, (), id="required, nobody"),
    pytest.param(True, ["alice"], SignoffStatus.MISSING, ("alice",), id="required, one"),
    pytest.param(True, ["alice", "bob"], SignoffStatus.GRANTED, ("alice", "bob"), id="required, two"),
    pytest.param(True, ["alice", "Alice"], SignoffStatus.MISSING, ("alice",), id="same name, other case"),
    pytest.param(True, ["alice", "  ALICE\t"], SignoffStatus.MISSING, ("alice",), id="same name, padded"),
    pytest.param(True, ["Straße", "STRASSE"], SignoffStatus.MISSING, ("Straße",), id="case folding, not lower()"),
    pytest.param(True, ["ａlice", "alice"], SignoffStatus.MISSING, ("ａlice",), id="fullwidth is the same person"),
    pytest.param(True, [" alice ", "bob", "carol"], SignoffStatus.GRANTED, ("alice", "bob", "carol"), id="three"),
    pytest.param(True, ["alice", "alice", "bob"], SignoffStatus.GRANTED, ("alice", "bob"), id="repeat + another"),
    pytest.param(False, [], SignoffStatus.NOT_REQUIRED, (), id="not required, nobody"),
    pytest.param(False, ["alice"], SignoffStatus.NOT_REQUIRED, ("alice",), id="not required, recorded anyway"),
]


@pytest.mark.parametrize("required, names, status, recorded", SIGNOFF_CASES)
def test_two_distinct_approvers(
    required: bool, names: list[str], status: SignoffStatus, recorded: tuple[str, ...]
) -> None:
    signoff = check_signoff(required, names)
    assert signoff.status is status
    assert signoff.approvers == recorded


@pytest.mark.parametrize(
    "name",
    [pytest.param("", id="empty"), pytest.param("   ", id="blank"), pytest.param("bob\nalice", id="newline"),
     pytest.param("x" * 201, id="too long")],
)
def test_unusable_approver_names_are_rejected(name: str) -> None:
    with pytest.raises(ApproverError):
        check_signoff(True, ["alice", name])


def test_signoff_is_checked_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    checklist = load(tmp_path, f"checks:\n  - {{name: a, kind: shell, timeout: 5, command: [touch, '{marker}']}}\n")
    with pytest.raises(ApproverError):
        run_checklist(checklist, approvers=["alice", ""])
    assert not marker.exists()


def test_missing_signoff_fails_the_report_even_when_checks_pass(tmp_path: Path) -> None:
    checklist = load(tmp_path, "requires_signoff: true\nchecks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist, approvers=["alice", "ALICE"])
    assert report.results[0].passed
    assert report.signoff.status is SignoffStatus.MISSING
    assert not report.ok
    assert report.problems == ["sign-off missing: needs 2 distinct approvers, got 1 (alice)"]
    granted = run_checklist(checklist, approvers=["alice", "bob"])
    assert granted.ok and granted.signoff.status is SignoffStatus.GRANTED


# -- shell ------------------------------------------------------------------------


def test_shell_passes_on_exit_status_zero(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo all good']\n")
    assert result.status is CheckStatus.PASSED
    assert result.reason == "exit status 0; output: all good"
    assert result.details["exit_status"] == 0 and result.details["output"] == "all good\n"


def test_shell_fails_on_another_exit_status_with_the_output(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo 3 keys left >&2; exit 3']\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason == "exit status 3, expected 0; output: 3 keys left"


def test_shell_expected_exit_statuses(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'exit 3']\n    expect_exit: [1, 3]\n")
    assert result.status is CheckStatus.PASSED


@pytest.mark.parametrize(
    "pattern, status",
    [
        pytest.param("^revision: abc123$", CheckStatus.PASSED, id="matches a line"),
        pytest.param("revision: def456", CheckStatus.FAILED, id="does not match"),
        pytest.param(r"\A\s*\Z", CheckStatus.FAILED, id="empty-output pattern on output"),
    ],
)
def test_shell_output_match(tmp_path: Path, pattern: str, status: CheckStatus) -> None:
    result = run_one(
        tmp_path,
        f"    kind: shell\n    timeout: 5\n    command: [sh, -c, 'echo head; echo \"revision: abc123\"']\n"
        f"    output_match: '{pattern}'\n",
    )
    assert result.status is status, result.reason


def test_shell_empty_output_matches_the_empty_pattern(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: ['true']\n    output_match: '\\A\\s*\\Z'\n")
    assert result.status is CheckStatus.PASSED


def test_shell_string_is_split_and_never_run_by_a_shell(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: \"echo 'one arg' ; echo $HOME\"\n")
    assert result.status is CheckStatus.PASSED
    assert result.details["output"] == "one arg ; echo $HOME\n"


def test_shell_runs_in_the_checklist_directory_with_env(tmp_path: Path) -> None:
    result = run_one(
        tmp_path, "    kind: shell\n    timeout: 5\n    command: [sh, -c, 'pwd; echo $GRAY_TEST']\n    env: {GRAY_TEST: hello}\n"
    )
    assert result.details["output"] == f"{os.path.realpath(tmp_path)}\nhello\n"


def test_shell_command_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: shell\n    timeout: 5\n    command: [graywsgi-no-such-command]\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason.startswith("cannot run graywsgi-no-such-command: No such file or directory")


def test_timed_out_sleep_is_killed_by_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = run_one(
        tmp_path,
        f"    kind: shell\n    timeout: 0.3\n    command: [sh, -c, 'echo $$ > {pid_file}; exec sleep 30']\n",
    )
    took = time.monotonic() - started
    pid = int(pid_file.read_text())
    assert result.status is CheckStatus.TIMED_OUT
    assert result.reason == f"still running after 0.3s; killed process {pid} and its process group"
    assert result.details["pid"] == pid and result.details["exit_status"] == -15  # SIGTERM
    assert 0.3 <= result.duration < 3 and took < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: not even a zombie is left


def test_timed_out_command_takes_its_process_group_with_it(tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    script = f"trap '' TERM; sleep 30 & echo $! > {child_file}; wait"  # both ignore SIGTERM
    result = run_one(tmp_path, f"    kind: shell\n    timeout: 0.3\n    command: [sh, -c, \"{script}\"]\n")
    assert result.status is CheckStatus.TIMED_OUT
    assert result.details["exit_status"] == -9  # SIGKILL after the grace period
    assert gone_or_zombie(int(child_file.read_text()))


def test_background_processes_left_by_a_finished_command_are_killed(tmp_path: Path) -> None:
    child_file = tmp_path / "child"
    result = run_one(
        tmp_path, f"    kind: shell\n    timeout: 5\n    command: [sh, -c, 'sleep 30 & echo $! > {child_file}']\n"
    )
    assert result.status is CheckStatus.PASSED
    assert gone_or_zombie(int(child_file.read_text()))


# -- python -----------------------------------------------------------------------

PYTHON_CASES = [
    pytest.param("returns_true", "", CheckStatus.PASSED, f"{HERE}:returns_true returned True", id="True"),
    pytest.param("returns_false", "", CheckStatus.FAILED, f"{HERE}:returns_false returned False", id="False"),
    pytest.param(
        "returns_reason", "    args: {threshold: 5, value: 3}\n", CheckStatus.PASSED, "value 3 vs threshold 5",
        id="(True, reason) with args",
    ),
    pytest.param(
        "returns_reason", "    args: {threshold: 5, value: 9}\n", CheckStatus.FAILED, "value 9 vs threshold 5",
        id="(False, reason)",
    ),
    pytest.param(
        "raises", "", CheckStatus.ERROR, f"{HERE}:raises raised RuntimeError: broker unreachable", id="raises"
    ),
    pytest.param(
        "returns_garbage", "", CheckStatus.ERROR,
        f"{HERE}:returns_garbage returned {{'ok': True}}; expected a bool or a (bool, reason) tuple",
        id="returns something else",
    ),
    pytest.param(
        "returns_reason", "    args: {nope: 1}\n", CheckStatus.ERROR,
        f"{HERE}:returns_reason raised TypeError: returns_reason() got an unexpected keyword argument 'nope'",
        id="wrong args",
    ),
    pytest.param("not_callable", "", CheckStatus.ERROR, f"{HERE}:not_callable is not callable", id="not callable"),
    pytest.param(
        "no_such_function", "", CheckStatus.ERROR,
        f"cannot import {HERE}:no_such_function: AttributeError: ", id="no such function",
    ),
]


@pytest.mark.parametrize("function, extra, status, reason", PYTHON_CASES)
def test_python_callable(tmp_path: Path, function: str, extra: str, status: CheckStatus, reason: str) -> None:
    result = run_one(tmp_path, f"    kind: python\n    timeout: 5\n    callable: '{HERE}:{function}'\n{extra}")
    assert result.status is status
    assert result.reason.startswith(reason), result.reason


def test_python_module_that_does_not_import_is_an_error(tmp_path: Path) -> None:
    result = run_one(tmp_path, "    kind: python\n    timeout: 5\n    callable: 'graywsgi_no_such_module:check'\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason == (
        "cannot import graywsgi_no_such_module:check: ModuleNotFoundError: No module named 'graywsgi_no_such_module'"
    )


def test_python_callable_that_hangs_times_out(tmp_path: Path) -> None:
    HANG.clear()
    try:
        result = run_one(tmp_path, f"    kind: python\n    timeout: 0.2\n    callable: '{HERE}:hangs'\n")
    finally:
        HANG.set()
    assert result.status is CheckStatus.TIMED_OUT
    assert result.reason == "no verdict within 0.2s; the call was abandoned (a Python thread cannot be stopped)"
    assert 0.2 <= result.duration < 2


def test_timeout_scale_multiplies_every_timeout(tmp_path: Path) -> None:
    checklist = load(tmp_path, f"checks:\n  - {{name: a, kind: python, timeout: 0.1, callable: '{HERE}:note', "
                               "args: {label: a, sleep: 0.3}}\n")
    assert run_checklist(checklist).results[0].status is CheckStatus.TIMED_OUT
    assert run_checklist(checklist, timeout_scale=20).results[0].status is CheckStatus.PASSED


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


# -- the rollout state -------------------------------------------------------------


def test_gray_switch_closed_follows_the_kill_switch_in_a_file_store(tmp_path: Path) -> None:
    location = tmp_path / "state.json"
    check = "    kind: gray_switch_closed\n    timeout: 5\n    state: state.json\n"  # relative to the checklist
    store = FileStateStore(location)
    store.update(lambda s: s)  # an existing, clear state
    open_result = run_one(tmp_path, check)
    assert open_result.status is CheckStatus.FAILED
    assert open_result.reason == "kill switch clear (revision 1): canary routes still get their shares"
    store.set_route("canary", True, "error rate 41 %")
    still_open = run_one(tmp_path, check)
    assert still_open.status is CheckStatus.FAILED
    assert "open breakers (canary) do not count" in still_open.reason
    store.rollback("bad deploy")
    closed = run_one(tmp_path, check)
    assert closed.status is CheckStatus.PASSED
    assert re.fullmatch(
        r"kill switch set since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: bad deploy \(revision 3\): "
        r"every canary share is 0",
        closed.reason,
    ), closed.reason
    store.resume()
    assert run_one(tmp_path, check).status is CheckStatus.FAILED


def test_gray_switch_closed_with_an_unreadable_state_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{broken")
    result = run_one(tmp_path, "    kind: gray_switch_closed\n    timeout: 5\n    state: state.json\n")
    assert result.status is CheckStatus.ERROR
    assert result.reason.startswith(f"cannot read {tmp_path / 'state.json'}: ")


def test_store_reachable_with_a_file_store(tmp_path: Path) -> None:
    check = "    kind: store_reachable\n    timeout: 5\n    state: state.json\n"
    fresh = run_one(tmp_path, check)
    assert fresh.status is CheckStatus.PASSED
    assert fresh.reason.endswith("(revision 0); no state written yet (workers read the empty state)")
    FileStateStore(tmp_path / "state.json").rollback("x")
    written = run_one(tmp_path, check)
    assert written.status is CheckStatus.PASSED and "(revision 1)" in written.reason
    assert "no state written" not in written.reason


@pytest.mark.parametrize(
    "setup, state, reason",
    [
        pytest.param(None, "missing-dir/state.json", "does not exist", id="directory missing"),
        pytest.param("{broken", "state.json", "not a rollout state", id="corrupt file"),
    ],
)
def test_store_reachable_fails(tmp_path: Path, setup: str | None, state: str, reason: str) -> None:
    if setup is not None:
        (tmp_path / state).write_text(setup)
    result = run_one(tmp_path, f"    kind: store_reachable\n    timeout: 5\n    state: {state}\n")
    assert result.status is CheckStatus.FAILED
    assert reason in result.reason


def test_gray_switch_closed_and_store_reachable_with_redis(tmp_path: Path, redis_state: str) -> None:
    from graywsgi.state.redis_store import RedisStateStore

    url, _, key = redis_state.partition("#")
    checks = (
        f"checks:\n  - {{name: reachable, kind: store_reachable, timeout: 5, state: '{redis_state}'}}\n"
        f"  - {{name: closed, kind: gray_switch_closed, timeout: 5, state: '{redis_state}', depends_on: [reachable]}}\n"
    )
    checklist = load(tmp_path, checks)
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED, CheckStatus.FAILED]
    RedisStateStore(url, key=key, check_interval=0, timeout=2).rollback("redis rollback")
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED, CheckStatus.PASSED]
    assert "redis rollback" in report.results[1].reason


def test_store_reachable_fails_for_redis_nobody_listens_on(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    location = f"redis://127.0.0.1:{free_port()}/0#k"
    result = run_one(tmp_path, f"    kind: store_reachable\n    timeout: 2\n    state: '{location}'\n")
    assert result.status is CheckStatus.FAILED
    assert result.reason.startswith(f"cannot read {location}: ConnectionError")


# -- scheduling ---------------------------------------------------------------------


def test_independent_checks_run_at_the_same_time(tmp_path: Path) -> None:
    global BARRIER
    BARRIER = threading.Barrier(3, timeout=5)  # only passes if all three wait at once
    checklist = load(
        tmp_path,
        "checks:\n" + "".join(
            f"  - {{name: c{i}, kind: python, timeout: 10, callable: '{HERE}:meet_at_barrier'}}\n" for i in range(3)
        ),
    )
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.PASSED] * 3
    latest_start = max(r.started_at for r in report.results)
    assert all(r.finished_at >= latest_start for r in report.results)


def test_max_parallel_bounds_the_pool(tmp_path: Path) -> None:
    global BARRIER
    BARRIER = threading.Barrier(2, timeout=0.3)
    checklist = load(
        tmp_path,
        "max_parallel: 1\nchecks:\n" + "".join(
            f"  - {{name: c{i}, kind: python, timeout: 5, callable: '{HERE}:meet_at_barrier'}}\n" for i in range(2)
        ),
    )
    report = run_checklist(checklist)
    assert [r.status for r in report.results] == [CheckStatus.ERROR] * 2  # each waited alone
    assert all("BrokenBarrierError" in r.reason for r in report.results)
    assert report.results[1].started_at >= report.results[0].finished_at


def test_dependent_checks_wait_for_what_they_depend_on(tmp_path: Path) -> None:
    ORDER.clear()
    checklist = load(
        tmp_path,
        "checks:\n"
        f"  - {{name: last, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: last}},"
        " depends_on: [first, second]}\n"
        f"  - {{name: first, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: first, sleep: 0.2}}}}\n"
        f"  - {{name: second, kind: python, timeout: 5, callable: '{HERE}:note', args: {{label: second, sleep: 0.1}}}}\n",
    )
    report = run_checklist(checklist)
    assert ORDER == ["second", "first", "last"]
    last, first, second = report.results  # in file order
    assert last.started_at >= max(first.finished_at, second.finished_at)
    assert first.started_at < second.finished_at  # the two independent ones overlapped


def test_a_check_whose_dependency_failed_is_skipped_and_so_are_its_dependents(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 5, command: ['false']}\n"
        "  - {name: b, kind: shell, timeout: 5, command: ['true'], depends_on: [a]}\n"
        "  - {name: c, kind: shell, timeout: 5, command: ['true'], depends_on: [b]}\n"
        "  - {name: d, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: e, kind: shell, timeout: 0.2, command: [sleep, '5']}\n"
        "  - {name: f, kind: shell, timeout: 5, command: ['true'], depends_on: [d, e]}\n",
    )
    report = run_checklist(checklist)
    assert {r.name: (r.status.value, r.reason) for r in report.results if r.status is CheckStatus.SKIPPED} == {
        "b": ("skipped", "dependency 'a' failed"),
        "c": ("skipped", "dependency 'b' was skipped"),
        "f": ("skipped", "dependency 'e' timed out"),
    }
    assert report.results[3].status is CheckStatus.PASSED
    assert report.counts() == {"passed": 1, "failed": 1, "timed_out": 1, "skipped": 3, "error": 0}


def test_the_pool_is_made_per_run_and_gone_afterwards(tmp_path: Path) -> None:
    code = "import threading, graywsgi.rollout.checklist, graywsgi.cli.checklist; print(threading.active_count())"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert imported.stdout.strip() == "1"  # importing starts no thread
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    run_checklist(checklist)
    assert not [th for th in threading.enumerate() if th.name.startswith("graywsgi-checklist")]


class Recorder(ProgressListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.waits: list[list[RunningCheck]] = []

    def on_start(self, check: Check, timeout: float) -> None:
        self.events.append(("start", f"{check.name} {timeout:g}"))

    def on_finish(self, result: CheckResult) -> None:
        self.events.append(("finish", f"{result.name} {result.status.value}"))

    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        self.waits.append(list(running))


def test_progress_while_long_checks_run(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "checks:\n  - {name: slow, kind: shell, timeout: 5, command: [sleep, '0.5']}\n"
        "  - {name: after, kind: shell, timeout: 5, command: ['false'], depends_on: [slow]}\n"
        "  - {name: never, kind: shell, timeout: 5, command: ['true'], depends_on: [after]}\n",
    )
    recorder = Recorder()
    run_checklist(checklist, listener=recorder, progress_interval=0.1, timeout_scale=2)
    assert recorder.events == [
        ("start", "slow 10"),
        ("finish", "slow passed"),
        ("start", "after 10"),
        ("finish", "after failed"),
        ("finish", "never skipped"),
    ]
    assert len(recorder.waits) >= 2
    assert all(w[0].check.name == "slow" and w[0].timeout == 10 for w in recorder.waits)
    assert recorder.waits[-1][0].elapsed > recorder.waits[0][0].elapsed


class Broken(ProgressListener):
    def on_finish(self, result: CheckResult) -> None:
        raise RuntimeError("listener bug")


def test_a_listener_that_raises_breaks_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist, listener=Broken())
    assert report.ok
    assert "progress listener on_finish failed" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"timeout_scale": 0}, id="zero scale"),
        pytest.param({"timeout_scale": float("nan")}, id="nan scale"),
        pytest.param({"max_parallel": 0}, id="no workers"),
        pytest.param({"progress_interval": 0}, id="zero interval"),
    ],
)
def test_run_options_that_cannot_work(tmp_path: Path, kwargs: dict[str, t.Any]) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    with pytest.raises(ValueError):
        run_checklist(checklist, **kwargs)


# -- the report -------------------------------------------------------------------------


def test_report_json_has_every_field_with_utc_timestamps(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "name: demo\nrequires_signoff: true\nchecks:\n"
        "  - {name: ok, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: bad, kind: shell, timeout: 5, command: ['false']}\n",
    )
    before = datetime.now(UTC)
    report = run_checklist(checklist, approvers=["alice", "bob"])
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["name"] == "demo"
    assert data["checklist"] == str(tmp_path / "checklist.yaml")
    assert data["signoff"] == {
        "required": True, "status": "granted", "approvers": ["alice", "bob"], "needed": 2,
        "reason": "granted by alice, bob",
    }
    assert data["problems"] == ["1 of 2 checks did not pass: bad (failed)"]
    assert [c["status"] for c in data["checks"]] == ["passed", "failed"]
    for item in [data, *data["checks"]]:
        started = datetime.fromisoformat(item["started_at"])
        finished = datetime.fromisoformat(item["finished_at"])
        assert item["started_at"].endswith("Z") and started.utcoffset() is not None
        assert before - timedelta(seconds=1) <= started <= finished
        assert item["duration"] >= 0
    assert set(data["checks"][0]) == {"name", "kind", "status", "reason", "started_at", "finished_at", "duration", "details"}


def test_report_save(tmp_path: Path) -> None:
    checklist = load(tmp_path, "checks:\n  - {name: a, kind: shell, timeout: 5, command: ['true']}\n")
    report = run_checklist(checklist)
    target = tmp_path / "report.json"
    report.save(target)
    assert json.loads(target.read_text())["checks"][0]["name"] == "a"
    report.save(target)  # overwrites
    with pytest.raises(FileExistsError):
        report.save(target, overwrite=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_table_lists_every_check_and_escapes_what_a_terminal_would_act_on(tmp_path: Path) -> None:
    checklist = load(
        tmp_path,
        "requires_signoff: true\nchecks:\n"
        "  - {name: ok, kind: shell, timeout: 5, command: ['true']}\n"
        "  - {name: evil, kind: shell, timeout: 5, command: [printf, 'line one\\n\\033[2Jcleared'], expect_exit: 1}\n",
    )
    report = run_checklist(checklist, approvers=["alice"])
    table = report.format_table()
    lines = table.splitlines()
    narrow = report.format_table(width=60).splitlines()
    assert narrow[2].endswith("...") and len(narrow[2]) <= 60 + 12
    assert re.match(r"CHECK +KIND +STATUS +TIME +REASON", lines[0])
    assert re.match(r"ok +shell +passed +\d+\.\d\ds +exit status 0", lines[1])
    assert re.match(r"evil +shell +failed +\d+\.\d\ds +exit status 0, expected 1; output: \\x1b\[2Jcleared", lines[2])
    assert "\x1b" not in table
    assert lines[-2] == "sign-off: missing: needs 2 distinct approvers, got 1 (alice)"
    assert lines[-1].startswith("result: NOT OK -- 1 of 2 checks did not pass: evil (failed); sign-off missing")


def test_docs_page_examples_load(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "checklist.md").read_text("utf-8")
    blocks = re.findall(r"```yml\n(.*?)```", page, re.DOTALL)
    assert len(blocks) >= 2
    for n, block in enumerate(blocks):
        checklist = parse_checklist(block, filename=f"checklist.md#{n}.yaml", directory=str(tmp_path))
        assert checklist.checks


class Interrupt(ProgressListener):
    def on_waiting(self, running: t.Sequence[RunningCheck]) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_run_kills_the_commands_still_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    checklist = load(
        tmp_path, f"checks:\n  - {{name: a, kind: shell, timeout: 60, command: [sh, -c, 'echo $$ > {pid_file}; exec sleep 60']}}\n"
    )
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_checklist(checklist, listener=Interrupt(), progress_interval=0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
