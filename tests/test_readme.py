"""The README's first commands are what CI runs, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block is not None, "README.md must open with a code block of commands"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_install_demo_and_test_commands() -> None:
    install, demo, test = readme_commands()
    assert install.startswith("pip install")
    assert demo == "graywsgi demo"
    assert "pytest" in test


def test_ci_runs_the_readme_commands() -> None:
    install, _, test = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert install in ci_lines
    assert test in ci_lines
