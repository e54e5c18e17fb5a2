"""Every ```python block in docs/*.md runs (tests/docs_examples.py, one page per process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if re.search(r"^```python\s*$", p.read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_examples_run(page: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs_examples.py"), str(page)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python blocks ran" in result.stdout


def test_pages_with_examples_are_found() -> None:
    assert {p.name for p in PAGES} >= {"quickstart.md", "flask.md", "django.md", "routing.md", "propagation.md"}
