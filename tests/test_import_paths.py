"""Import paths users and the documentation rely on keep working (docs/architecture.md, "Import paths").

- The old paths kept as thin modules give the very objects of their new homes.
- Every name each old path exported before the package was grouped by concern
  (tests/data/import_paths_before_grouping.json: the ``__all__`` of each module
  at commit 5cfb636) is still importable from it.
- Every ``import`` line in the documentation, README and examples imports.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Old import path -> the module it now is (the thin modules at graywsgi/*.py).
MOVED = {
    "graywsgi.admin": "graywsgi.rollout.admin",
    "graywsgi.breaker": "graywsgi.core.breaker",
    "graywsgi.checklist": "graywsgi.rollout.checklist",
    "graywsgi.config": "graywsgi.rules.files",
    "graywsgi.context": "graywsgi.core.context",
    "graywsgi.expression": "graywsgi.rules.expression",
    "graywsgi.extraction": "graywsgi.layers.extraction",
    "graywsgi.extraction_breaker": "graywsgi.layers.extraction_breaker",
    "graywsgi.guard": "graywsgi.layers.guard",
    "graywsgi.hashing": "graywsgi.core.hashing",
    "graywsgi.headers": "graywsgi.httputil.headers",
    "graywsgi.mirror": "graywsgi.evolution.mirror",
    "graywsgi.propagation": "graywsgi.httputil.propagation",
    "graywsgi.proxy": "graywsgi.httputil.proxy",
    "graywsgi.redis_store": "graywsgi.state.redis_store",
    "graywsgi.router": "graywsgi.layers.router",
    "graywsgi.routing": "graywsgi.rules.routing",
    "graywsgi.split": "graywsgi.layers.split",
    "graywsgi.store": "graywsgi.state.rule_store",
    "graywsgi.trust": "graywsgi.httputil.trust",
    "graywsgi.version": "graywsgi.core.version",
    "graywsgi.window": "graywsgi.core.window",
}
#: Old path -> its ``__all__`` before the grouping.
BEFORE: dict[str, list[str]] = json.loads(
    (ROOT / "tests" / "data" / "import_paths_before_grouping.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_path_gives_the_same_objects(old: str, new: str) -> None:
    old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    assert old_module.__all__ == new_module.__all__
    assert new_module.__all__, new
    for name in new_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"


@pytest.mark.parametrize("old", sorted(BEFORE))
def test_every_name_an_old_path_exported_still_imports(old: str) -> None:
    module = importlib.import_module(old)
    missing = [name for name in BEFORE[old] if not hasattr(module, name)]
    assert missing == [], f"{old} no longer has {missing}"
    assert set(BEFORE[old]) <= set(module.__all__), f"{old}.__all__ lost names"


def test_the_snapshot_covers_every_old_path() -> None:
    """Each thin module at the top of the package is an old path in the snapshot, and in MOVED."""
    thin = {f"graywsgi.{path.stem}" for path in (ROOT / "graywsgi").glob("*.py")} - {
        "graywsgi.__init__", "graywsgi.__main__", "graywsgi.errors", "graywsgi.speedups", "graywsgi._shadow",
        "graywsgi._version", "graywsgi._training",
    }
    assert thin == set(MOVED)
    assert set(MOVED) <= set(BEFORE)


def documented_imports() -> list[tuple[str, str]]:
    """(where, statement) for every graywsgi import line in docs, README.md and examples."""
    found: list[tuple[str, str]] = []
    files = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.py")),
             *sorted((ROOT / "examples").rglob("*.md"))]
    statement = re.compile(r"^\s*((?:from graywsgi[\w.]* import [\w, ]+)|(?:import graywsgi[\w.]*(?: as \w+)?))\s*(?:#.*)?$")
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = statement.match(line)
            if match and not match.group(1).rstrip().endswith(","):
                found.append((f"{path.relative_to(ROOT)}:{number}", match.group(1).strip()))
    return found


DOCUMENTED = documented_imports()


def test_the_documentation_has_import_lines() -> None:
    assert len(DOCUMENTED) > 30
    assert any(statement.startswith("from graywsgi.guard ") for _, statement in DOCUMENTED) or any(
        ".layers.guard" in statement for _, statement in DOCUMENTED)


@pytest.mark.parametrize("where, statement", DOCUMENTED, ids=[where for where, _ in DOCUMENTED])
def test_documented_import_works(where: str, statement: str) -> None:
    ast.parse(statement)
    exec(compile(statement, where, "exec"), {})  # noqa: S102 - the documented line itself
