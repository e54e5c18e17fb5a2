"""Start and stop a real gunicorn on 127.0.0.1 for the integration tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """A gunicorn master process serving ``app`` on 127.0.0.1, stopped by pid."""

    def __init__(self, app: str, *, workers: int, worker_class: str = "sync", env: dict[str, str] | None = None,
                 extra: t.Sequence[str] = ()) -> None:
        self.port = free_port()
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable, "-m", "gunicorn", app,
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers),
            "--worker-class", worker_class,
            "--chdir", str(ROOT),
            "--graceful-timeout", "5",
            "--timeout", "30",
            *extra,
        ]
        self.process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=self.log, stderr=subprocess.PIPE
        )
        self._wait_ready(timeout=30)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{stderr}")
            try:
                self.get("/")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not answer within the time limit")

    def get(self, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict[str, t.Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
            response = conn.getresponse()
            body = response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode()}
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.log.close()
