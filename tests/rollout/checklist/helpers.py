"""Helpers shared by the graywsgi.rollout.checklist tests: load a checklist, run one check, a free port."""

from __future__ import annotations

import socket
import typing as t
from pathlib import Path

from graywsgi.rollout.checklist.file import Checklist, load_checklist
from graywsgi.rollout.checklist.results import CheckResult
from graywsgi.rollout.checklist.running import run_checklist

ROOT = Path(__file__).resolve().parents[3]


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
