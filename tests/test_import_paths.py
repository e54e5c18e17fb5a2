"""Import paths users and the documentation rely on keep working (docs/architecture.md, "Import paths").

- The old paths kept as thin modules give the very objects of their new homes.
- A package that grew from a module re-exports what that module exported.
- Every ``import`` line in the documentation, README and examples imports.
"""

from __future__ import annotations

import ast
import importlib
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
    "graywsgi.guard": "graywsgi.layers.guard",
    "graywsgi.mirror": "graywsgi.evolution.mirror",
    "graywsgi.propagation": "graywsgi.httputil.propagation",
}
#: Packages (or modules) that re-export names defined in their submodules.
FRONTS = [
    "graywsgi", "graywsgi.rules", "graywsgi.state", "graywsgi.metrics", "graywsgi.prevalidation",
    "graywsgi.evolution", "graywsgi.cli", "graywsgi.contrib", "graywsgi.rollout.admin",
    "graywsgi.rollout.checklist", "graywsgi.rules.expression", "graywsgi.core.version",
    "graywsgi.core.breaker", "graywsgi.httputil.trust", "graywsgi.httputil.proxy", "graywsgi.metrics.layer",
    "graywsgi.contrib.otel", "graywsgi.evolution.stages", "graywsgi.evolution.mirror",
    "graywsgi.prevalidation.openapi", "graywsgi.prevalidation.gray_rules", "graywsgi.layers.identifiers",
    "graywsgi.layers.extraction",
]


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_path_gives_the_same_objects(old: str, new: str) -> None:
    old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    assert old_module.__all__ == new_module.__all__
    assert new_module.__all__, new
    for name in new_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"


@pytest.mark.parametrize("front", FRONTS)
def test_re_exported_names_are_the_defining_modules_objects(front: str) -> None:
    module = importlib.import_module(front)
    assert module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if isinstance(home, str) and home.startswith("graywsgi.") and hasattr(importlib.import_module(home), name):
            assert getattr(importlib.import_module(home), name) is value, f"{front}.{name}"


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
