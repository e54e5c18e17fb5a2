from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from graywsgi.cli.commands import main
from graywsgi.cli.demo import create_app, sample_ids
from graywsgi.core.hashing import fnv1a_32

DEMO_TIMEOUT = 20.0


def start_demo(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``graywsgi demo`` and return it with the lines it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "graywsgi", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + DEMO_TIMEOUT
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line == "\n" and any(x.startswith("curl") for x in lines):
            break
    return proc, lines


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the demo by its process id: SIGINT (as Ctrl-C), then SIGKILL."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def run_curl_line(line: str) -> dict[str, object]:
    """Perform what a printed ``curl -s [-H 'K: V']... URL`` line asks for."""
    words = shlex.split(line)
    assert words[:2] == ["curl", "-s"]
    headers: dict[str, str] = {}
    rest = words[2:]
    while rest[0] == "-H":
        name, _, value = rest[1].partition(":")
        headers[name] = value.strip()
        rest = rest[2:]
    (url,) = rest
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def test_demo_serves_what_its_curl_lines_promise() -> None:
    proc, lines = start_demo("--port", "0", "--percent", "15")
    try:
        curl = [line for line in lines if line.startswith("curl")]
        comments = [line for line in lines if line.startswith("# goes to")]
        assert len(curl) == 4, lines
        results = [run_curl_line(line) for line in curl]
        expected = ["stable" if "stable" in c.split(":")[0] else "canary" for c in comments]
        assert [r["served_by"] for r in results] == expected == ["stable", "stable", "canary", "canary"]
        by_id = results[2]
        assert isinstance(by_id["gray_id"], str) and fnv1a_32(by_id["gray_id"]) % 100 < 15
        assert results[3]["traffic_color"] == "canary"
        assert all(r["degrade_level"] == "NONE" for r in results)
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_demo_reports_a_taken_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "graywsgi", "demo", "--port", str(port)],
            capture_output=True, text=True, timeout=DEMO_TIMEOUT,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        pytest.param(["demo", "--percent", "150"], "not from 0 to 100", id="percent too big"),
        pytest.param(["demo", "--percent", "lots"], "not a number", id="percent not a number"),
        pytest.param(["demo", "--port", "70000"], "not from 0 to 65535", id="port too big"),
        pytest.param(["demo", "--port", "http"], "not a port number", id="port not a number"),
        pytest.param([], "required", id="no command"),
        pytest.param(["deploy"], "invalid choice", id="unknown command"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import graywsgi
    import graywsgi.speedups

    with pytest.raises(SystemExit) as excinfo:
        main(["--version"])
    assert excinfo.value.code == 0
    # The version, then which path runs: "compiled fast path" or "pure Python".
    out = capsys.readouterr().out.strip()
    assert out == f"graywsgi {graywsgi.__version__} ({graywsgi.speedups.describe()})"
    expected = "pure Python" if os.environ.get("GRAYWSGI_PURE_PYTHON") else "compiled fast path"
    if os.environ.get("CI") == "true" or os.environ.get("GRAYWSGI_PURE_PYTHON"):
        assert expected in out


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "graywsgi")
    assert os.path.exists(script), "pip install did not create the graywsgi console script"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    assert result.returncode == 0
    assert "demo" in result.stdout


@pytest.mark.parametrize("percent", [0, 1, 15, 99, 100])
def test_sample_ids(percent: float) -> None:
    canary_id, stable_id = sample_ids(percent)
    if percent == 0:
        assert canary_id is None
    else:
        assert canary_id is not None and fnv1a_32(canary_id) % 100 < percent
    if percent == 100:
        assert stable_id is None
    else:
        assert stable_id is not None and fnv1a_32(stable_id) % 100 >= percent


def test_demo_app_in_process() -> None:
    client = create_app(percent=0).test_client()
    assert client.get("/", buffered=True).json["served_by"] == "stable"
    canary = client.get("/", headers={"X-Traffic-Color": "canary"}, buffered=True)
    assert canary.json["served_by"] == "canary"
    degraded = client.get("/", headers={"X-Gray-ID": "x\x01", "X-Env": "\x01"}, buffered=True)
    assert degraded.json["degrade_level"] == "L2"


def graywsgi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graywsgi", *args], capture_output=True, text=True, timeout=DEMO_TIMEOUT
    )


def test_rollback_resume_and_state_on_a_file(tmp_path: "os.PathLike[str]") -> None:
    from graywsgi.state.rollout_state import FileStateStore

    location = os.path.join(tmp_path, "state.json")
    worker_view = FileStateStore(location, check_interval=0)
    result = graywsgi("rollback", "--state", location, "--reason", "error spike on canary")
    assert result.returncode == 0, result.stderr
    assert "kill switch: SET" in result.stdout and "error spike on canary" in result.stdout
    assert worker_view.current().killed and worker_view.current().reason == "error spike on canary"
    shown = graywsgi("state", "--state", location, "--json")
    assert json.loads(shown.stdout)["killed"] is True
    assert graywsgi("resume", "--state", location).returncode == 0
    assert not worker_view.current().killed


def test_state_commands_on_redis() -> None:
    import uuid

    from tests.state.test_redis_store import REDIS_URL, redis_client

    client = redis_client()
    key = f"graywsgi-test:{uuid.uuid4().hex}"
    try:
        location = f"{REDIS_URL}#{key}"
        assert graywsgi("rollback", "--state", location).returncode == 0
        assert json.loads(client.get(key))["killed"] is True
        assert "kill switch: SET" in graywsgi("state", "--state", location).stdout
    finally:
        client.delete(key)
        client.close()


@pytest.mark.parametrize(
    "location, fragment",
    [
        pytest.param("redis://127.0.0.1:1/0", "ConnectionError", id="Redis unreachable"),
        pytest.param("/nonexistent-dir/state.json", "does not exist", id="missing directory"),
        pytest.param("http://example/state", "use a file path or redis", id="unknown scheme"),
    ],
)
def test_state_commands_fail_loudly(location: str, fragment: str) -> None:
    result = graywsgi("state", "--state", location)
    assert result.returncode == 1
    assert fragment in result.stderr
    assert result.stdout == ""


# --- graywsgi validate --rules: where a misspelt key is -------------------------

MISSPELT_SPLIT = [
    pytest.param(
        "rules.yaml",
        "# Gray release rules of the shop.\n"
        "version: 1\n"
        "default_cluster: stable\n"
        "\n"
        "clusters:\n"
        '  stable: {upstream: "http://10.0.0.7:8000"}\n'
        '  canary: {upstream: "http://10.0.0.8:8000"}\n'
        "\n"
        "rules:\n"
        "  - name: checkout\n"
        "    match:\n"
        "      path: {prefix: /checkout}\n"
        "    mode: hash\n"
        "    splt:\n"  # line 14, column 5; its value starts on line 15
        "      - {cluster: canary, weight: 20}\n",
        "$.rules[0]",
        (14, 5),
        id="yaml",
    ),
    pytest.param(
        "rules.json",
        "{\n"
        '  "clusters": {\n'
        '    "stable": {},\n'
        '    "canary": {}\n'
        "  },\n"
        '  "rules": [\n'
        "    {\n"
        '      "name": "checkout",\n'
        '      "splt": [\n'  # line 9, column 7 (the opening quote)
        '        {"cluster": "canary", "weight": 20}\n'
        "      ]\n"
        "    }\n"
        "  ]\n"
        "}\n",
        "$.rules[0]",
        (9, 7),
        id="json",
    ),
    pytest.param(
        "rules.toml",
        'default_cluster = "stable"\n'
        "\n"
        "[clusters.stable]\n"
        "[clusters.canary]\n"
        "\n"
        "[[rules]]\n"
        'name = "checkout"\n'
        'mode = "hash"\n'
        "\n"
        "[[rules.splt]]\n"  # line 10, column 9
        'cluster = "canary"\n'
        "weight = 20\n",
        "$.rules[0]",
        (10, 9),
        id="toml: in a [[table]] header",
    ),
    pytest.param(
        "rules.toml",
        'default_cluster = "stable"\n'
        "clusters = {stable = {}, canary = {}}\n"
        "\n"
        "[[rules]]\n"
        'name = "search"\n'
        'split = [{cluster = "canary", weight = 5}]\n'
        "\n"
        "[[rules]]\n"
        'name = "checkout"\n'
        '  splt = [{cluster = "canary", weight = 20}]\n'  # line 10, column 3; rules[1]
        "\n"
        "[rules.match.path]\n"
        'prefix = "/checkout"\n',
        "$.rules[1]",
        (10, 3),
        id="toml: key = value in the second [[rules]]",
    ),
]


@pytest.mark.parametrize(("name", "text", "where", "position"), MISSPELT_SPLIT)
def test_validate_names_the_line_and_column_of_a_misspelt_key(
    tmp_path: "os.PathLike[str]",
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    where: str,
    position: tuple[int, int],
) -> None:
    path = os.path.join(tmp_path, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    assert main(["validate", "--rules", path]) == 1
    captured = capsys.readouterr()
    line, column = position
    assert captured.out == ""
    assert captured.err == (
        f"{path}:{line}: {where}: Additional properties are not allowed ('splt' was unexpected) (column {column})\n"
    )
