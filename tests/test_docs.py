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

    from tests.test_import_paths import MOVED

    pages = [ROOT / "docs" / "api.md", *sorted((ROOT / "docs" / "api").glob("*.md"))]
    documented = {name for page in pages for name in re.findall(r"automodule:: (graywsgi[\w.]*)", page.read_text())}
    modules = set()
    for path in (ROOT / "graywsgi").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts):
            continue
        if ".".join(parts) in MOVED:
            continue  # an old import path kept as a thin module
        modules.add(".".join(parts))
    assert modules - documented == set()
    assert documented - modules == set()


def test_concept_pages_link_their_api_pages() -> None:
    import re

    without = {"index.md", "api.md", "architecture.md", "changelog.md", "dependencies.md"}
    for page in sorted((ROOT / "docs").glob("*.md")):
        targets = re.findall(r"\]\((api/[\w/]+\.md)\)", page.read_text(encoding="utf-8"))
        if page.name not in without:
            assert targets, f"{page.name} does not link its API page"
        for target in targets:
            assert (ROOT / "docs" / target).exists(), f"{page.name} links {target}, which does not exist"


def _source_names() -> set[str]:
    """The dotted names the code itself writes: logger, metric, attribute and
    environ-key names, with and without the ``graywsgi.`` prefix (metric
    names are built as ``<prefix>.<name>``)."""
    import ast

    names = set()
    for path in (ROOT / "graywsgi").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value.split(":")[0].lstrip(".")  # f"{namespace}.decisions" holds ".decisions"
                names.add(value[len("graywsgi."):] if value.startswith("graywsgi.") else value)
    return names


def _resolves(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError:
            return False
        return True
    return False


def test_dotted_names_in_the_docs_resolve() -> None:
    """Every `graywsgi.x.y` a page names is a module or an object there -- or a
    logger, metric or environ name the code uses (no stale paths after a move)."""
    import re

    known = _source_names()
    stale = []
    for page in sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]):
        if page.name in ("changelog.md", "architecture.md"):  # they name old paths on purpose
            continue
        for name in set(re.findall(r"`~?(graywsgi(?:\.\w+)+)(?:\(\))?`", page.read_text(encoding="utf-8"))):
            tail = name.split(".", 1)[1]
            # a name the code writes, or one with a route appended (graywsgi.breaker.trip.<route>)
            written = tail in known or ("." in tail.rpartition(".")[0] and tail.rpartition(".")[0] in known)
            derived = name in ("graywsgi.request.count",)  # DogStatsD's count of the request timer
            if not (_resolves(name) or written or derived):
                stale.append(f"{page.name}: {name}")
    assert stale == []
