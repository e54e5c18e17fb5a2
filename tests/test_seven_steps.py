"""docs/seven-steps.md, run for real: the example service, the CLI, the admin JSON."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "examples" / "seven_steps" / "rules.yaml")
TOKEN = "walkthrough-token-123"


def graywsgi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graywsgi", *args], capture_output=True, text=True, timeout=120)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, t.Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


class Service:
    def __init__(self, state: str) -> None:
        env = {**os.environ, "GRAYWSGI_ADMIN_TOKEN": TOKEN}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "seven_steps" / "app.py"), "--port", "0", "--state", state],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        self.port = int(line.split(":")[2].split("/")[0])
        self.served: list[str] = []
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._traffic)
        self.thread.start()

    def _traffic(self) -> None:
        n = 0
        while not self.stop.is_set():
            status, body = get(self.port, "/checkout", {"X-Gray-ID": f"user-{n % 200}"})
            self.statuses.append(status)
            self.served.append(str(body.get("route")))
            n += 1

    def share(self, last: int = 200) -> float:
        time.sleep(0.2)
        recent = self.served[-last:]
        return recent.count("canary") / max(1, len(recent))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        os.kill(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def advance(state: str) -> subprocess.CompletedProcess[str]:
    return graywsgi("rollout", "advance", "--rules", RULES, "--state", state, "--wait", "60")


def test_the_seven_steps(tmp_path: Path) -> None:
    state = str(tmp_path / "shop-state.json")
    # 1. pre-check
    assert graywsgi("validate", "--rules", RULES).returncode == 0
    simulated = graywsgi("simulate", "--rules", RULES, "--path", "/checkout", "--generate", "2000")
    assert simulated.returncode == 0 and "no user flips back" in simulated.stdout
    service = Service(state)
    try:
        # 2. dark launch
        assert graywsgi("rollout", "start", "--rules", RULES, "--state", state).returncode == 0
        assert get(service.port, "/checkout", {"X-Traffic-Color": "canary"})[1]["release"] == "1.5.0"
        assert service.share() == 0.0
        # 3. first slice
        assert advance(state).returncode == 0
        deadline = time.monotonic() + 30
        while service.share(400) == 0.0 and time.monotonic() < deadline:
            pass
        assert 0 < service.share(400) < 0.2
        # 4. observe: the gate waits for 20 canary requests, then lets it in
        result = advance(state)
        for _ in range(20):
            if result.returncode == 0:
                break
            assert "gate failed: canary has" in result.stderr
            time.sleep(1)
            result = advance(state)
        assert result.returncode == 0, result.stderr
        # 5. ramp
        for expected in ("4. ramp-25", "5. ramp-50"):
            result = advance(state)
            assert result.returncode == 0, result.stderr
            assert f"-> {expected}" in result.stdout
        status = graywsgi("rollout", "status", "--rules", RULES, "--state", state, "--json")
        assert json.loads(status.stdout)["weight"] == 50.0
        _, admin = get(service.port, "/_gray/status", {"Authorization": f"Bearer {TOKEN}"})
        assert admin["rollout"]["step_name"] == "ramp-50"
        # automatic rollback: a failing canary is cut off, users see only 200s
        Path(state + ".canary-fails").touch()
        count_before = len(service.statuses)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, admin = get(service.port, "/_gray/status", {"Authorization": f"Bearer {TOKEN}"})
            if (admin["routes"]["canary"]["breaker"] or {}).get("state") == "open":
                break
            time.sleep(0.1)
        assert admin["routes"]["canary"]["breaker"]["state"] == "open"
        assert admin["routes"]["canary"]["taking_traffic"] is False
        assert service.share() == 0.0
        assert set(service.statuses[count_before:]) == {200}
        Path(state + ".canary-fails").unlink()
        # manual rollback and resume
        assert graywsgi("rollback", "--state", state, "--reason", "walkthrough").returncode == 0
        _, admin = get(service.port, "/_gray/status", {"Authorization": f"Bearer {TOKEN}"})
        assert admin["kill_switch"]["killed"] is True
        assert graywsgi("resume", "--state", state).returncode == 0
        # 6. promote
        promoted = graywsgi("rollout", "promote", "--rules", RULES, "--state", state, "--json")
        assert json.loads(promoted.stdout)["weight"] == 100.0
    finally:
        service.close()
    assert not Path(state + ".canary-fails").exists()
