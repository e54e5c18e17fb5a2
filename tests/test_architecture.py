"""The package's shape, as docs/architecture.md draws it: who may import whom.

The imports are read from the source with :mod:`ast` -- every ``import``
and ``from ... import`` of a graywsgi module, at module level, inside
functions and under ``if TYPE_CHECKING:`` alike (a type-only import is
still a dependency a reader must follow) -- and checked three ways:

- no circle among graywsgi's modules;
- each package imports only its own modules and the packages below it
  (:data:`RANKS`);
- no module is longer than :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import ast
import typing as t
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "graywsgi"

#: Lower imports nothing higher. Packages of one rank do not import each other.
RANKS: dict[str, int] = {
    # the base: errors, the version, what the compiled modules see of Cython
    "graywsgi.errors": 0, "graywsgi._version": 0, "graywsgi._shadow": 0, "graywsgi._capi": 0,
    "graywsgi.speedups": 0,
    "graywsgi.core": 1,          # values: context, hashing, versions, windows, breakers
    "graywsgi.httputil": 2,      # header syntax, trust, proxy, propagation
    "graywsgi.rules": 3,         # rule sets: model, files, compiled routing, expressions, plans
    "graywsgi.state": 4,         # shared state and stores (memory, file, Redis); rollouts
    "graywsgi.layers": 5,        # the middleware of the request path and their steps
    "graywsgi.metrics": 6,       # the Metrics layer and its statsd lines
    "graywsgi.prevalidation": 7,  # OpenAPI pre-validation
    "graywsgi.evolution": 7,     # protocol evolution and mirroring
    "graywsgi.rollout": 8,       # the operator's tools: admin app, rollback checklist
    "graywsgi.cli": 9,           # the command line
    "graywsgi.contrib": 9,       # Flask, Django, OpenTelemetry, Prometheus, OpenFeature
    "graywsgi": 10,              # the package's front (graywsgi/__init__.py) and old import paths
}
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    module_name(path): path for path in sorted(PACKAGE.rglob("*.py*")) if path.suffix in (".py", ".pyi")
}


def imports_of(name: str, path: Path) -> set[str]:
    """The graywsgi modules ``name`` imports (a package's ``__init__`` counts as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        return target

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names if alias.name.split(".")[0] == "graywsgi")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "graywsgi":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in MODULES else resolve(base))
    found.discard(name)
    return found


GRAPH: dict[str, set[str]] = {name: imports_of(name, path) for name, path in MODULES.items()}


def rank(name: str) -> tuple[int, str]:
    """The rank of the package ``name`` belongs to, and that package."""
    probe = name
    while probe not in RANKS:  # a module at the top (an old import path) ends at the front
        probe = probe.rpartition(".")[0]
    return RANKS[probe], probe


def cycles(graph: t.Mapping[str, t.Iterable[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_rank() -> None:
    """A new package must be placed in the order before it can import anything."""
    packages = {f"graywsgi.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    assert packages <= set(RANKS)


def test_the_walk_sees_the_imports() -> None:
    """The graph is not empty by accident: known edges, type-only and lazy ones included."""
    assert "graywsgi.layers.pipeline" in GRAPH["graywsgi.layers.extraction"]
    assert "graywsgi._capi" in GRAPH["graywsgi.layers.pipeline"]  # under TYPE_CHECKING
    assert "graywsgi.state.redis_store" in GRAPH["graywsgi.state.locations"]  # inside a function
    assert len(MODULES) > 60


def test_cycles_are_found() -> None:
    """The checker itself: a circle of three is reported, a chain is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle() -> None:
    assert cycles(GRAPH) == [], "graywsgi's modules import each other in a circle"


def test_packages_import_only_downwards() -> None:
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        own_rank, own_package = rank(name)
        for target in sorted(targets):
            target_rank, target_package = rank(target)
            if target_package != own_package and target_rank >= own_rank:
                wrong.append(f"{name} ({own_package}, rank {own_rank}) imports {target} "
                             f"({target_package}, rank {target_rank})")
    assert wrong == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines; split it along a seam"


def test_docs_table_says_what_the_code_does() -> None:
    """docs/architecture.md's "Who imports whom" table lists each package's imports exactly."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Who imports whom", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`graywsgi."):
            documented[cells[0].strip("`")] = {
                item.strip().strip("`") for item in cells[1].split(",") if item.strip() not in ("", "--")
            }
    packages = {package for package, value in RANKS.items() if 0 < value < RANKS["graywsgi"]}
    actual: dict[str, set[str]] = {package: set() for package in packages}
    for name, targets in GRAPH.items():
        _, own = rank(name)
        if own not in packages:
            continue
        for target in targets:
            target_rank, package = rank(target)
            if package != own and target_rank > 0:
                actual[own].add(package)
    assert documented == actual
