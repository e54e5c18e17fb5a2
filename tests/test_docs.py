"""Rule files shown in the docs and examples are loaded, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graywsgi.rules.files import load_rules, parse_rules

ROOT = Path(__file__).resolve().parent.parent


def yaml_blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for n, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text("utf-8"), re.S)):
            found.append((f"{page.name}#{n}", block))
    return found


@pytest.mark.parametrize("name, block", [pytest.param(n, b, id=n) for n, b in yaml_blocks()])
def test_yaml_examples_in_docs_load(name: str, block: str) -> None:
    rules = parse_rules(block, filename=name + ".yaml")
    assert rules.ruleset.clusters


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_rule_files_load(path: Path) -> None:
    rules = load_rules(path)
    assert rules.rules


def test_docs_have_yaml_examples() -> None:
    assert len(yaml_blocks()) >= 3


def test_sphinx_builds_without_warnings(tmp_path: Path) -> None:
    """The documentation site (Markdown pages + API reference) builds with -W."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", str(ROOT / "docs"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "api.html").exists()


def test_every_module_has_an_api_entry() -> None:
    """Each public module is rendered on an API page (docs/api.md or docs/api/*.md)."""
    import re

    pages = [ROOT / "docs" / "api.md", *sorted((ROOT / "docs" / "api").glob("*.md"))]
    documented = {name for page in pages for name in re.findall(r"automodule:: (graywsgi[\w.]*)", page.read_text())}
    modules = set()
    for path in (ROOT / "graywsgi").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts):
            continue
        if len(parts) == 2 and path.name != "__init__.py" and parts[1] not in ("errors", "speedups"):
            continue  # an old import path kept as a thin module (tests/test_import_paths.py)
        modules.add(".".join(parts))
    assert modules - documented == set()
    assert documented - modules == set()


def test_concept_pages_link_their_api_pages() -> None:
    without = {"index.md", "api.md", "architecture.md", "changelog.md", "dependencies.md"}
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name not in without:
            assert "](api/" in page.read_text(encoding="utf-8"), f"{page.name} does not link its API page"
