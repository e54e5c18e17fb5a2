"""The tests follow the package (tests/README.md): a newcomer finds a module's tests by its name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_in_packages() -> list[tuple[str, Path]]:
    """(dotted name, the test file named for it) for every module inside a graywsgi package."""
    found = []
    for path in sorted((ROOT / "graywsgi").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" or len(parts) == 2:  # packages; the front and the base at the top
            continue
        found.append((".".join(parts), ROOT / "tests" / Path(*parts[1:-1]) / f"test_{parts[-1]}.py"))
    return found


def readme_rows() -> dict[str, list[str]]:
    text = (ROOT / "tests" / "README.md").read_text(encoding="utf-8")
    rows = {}
    for module, where in re.findall(r"^\| `(graywsgi[\w.]*)` \| (.+) \|$", text, flags=re.M):
        rows[module] = re.findall(r"`(tests/[\w/]+\.py)`", where)
    return rows


def test_every_module_has_its_tests_where_a_newcomer_looks() -> None:
    rows = readme_rows()
    missing = [name for name, test_file in modules_in_packages() if not test_file.exists() and name not in rows]
    assert missing == [], "add tests/<package>/test_<module>.py, or a row in tests/README.md"


def test_readme_rows_are_needed_and_true() -> None:
    named = dict(modules_in_packages())
    for module, files in readme_rows().items():
        assert module in named, f"tests/README.md names {module}, which does not exist"
        assert not named[module].exists(), f"{module} has {named[module].name}: drop its row"
        assert files, module
        for file in files:
            assert (ROOT / file).exists(), f"tests/README.md: {file} does not exist"


def test_test_directories_are_packages() -> None:
    """Same-named test files in two directories need each directory to be a package."""
    for directory in (ROOT / "tests").rglob("*"):
        if directory.is_dir() and any(directory.glob("test_*.py")):
            assert (directory / "__init__.py").exists(), directory
