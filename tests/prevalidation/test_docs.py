"""docs/prevalidation.md: the worked example runs as written and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from graywsgi.cli.validate import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "prevalidation.md"


def named_blocks(text: str) -> dict[str, str]:
    """Fenced blocks whose info string names a file: ```yaml openapi.yaml."""
    return {name: body for _lang, name, body in re.findall(r"```(\w+) (\S+)\n(.*?)```", text, re.S)}


def block_after(text: str, marker: str) -> str:
    start = text.index(marker)
    match = re.compile(r"```text\n(.*?)```", re.S).search(text, start)
    assert match is not None
    return match.group(1)


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    files = named_blocks(PAGE.read_text("utf-8"))
    assert set(files) == {"openapi.yaml", "schemas.yaml", "example.py"}
    for name, body in files.items():
        (tmp_path / name).write_text(body, "utf-8")
    return tmp_path


def test_the_worked_example_runs_as_written(example_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "example.py"], cwd=example_dir, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == block_after(PAGE.read_text("utf-8"), "It prints:")


def test_the_cli_table_on_the_page_is_what_the_command_prints(
    example_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(example_dir)
    assert main(["validate", "--openapi", "openapi.yaml"]) == 0
    page = PAGE.read_text("utf-8")
    assert capsys.readouterr().out == block_after(page, "prints each operation's gray rules")


def test_the_page_records_the_ratio_and_the_command() -> None:
    page = PAGE.read_text("utf-8")
    assert "python bench/prevalidation.py --repeat 9" in page
    assert re.search(r"about \d+x cheaper than openapi-core", page)
