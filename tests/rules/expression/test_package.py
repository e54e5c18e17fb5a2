"""Tests of the graywsgi.rules.expression package as a whole: source checks and fuzzing."""

from __future__ import annotations

import ast
import pathlib
from random import Random

import pytest

import graywsgi.rules.expression as expression_module
from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError
from tests.rules.expression.helpers import REQUEST, ConstantFacts

PACKAGE_DIR = pathlib.Path(expression_module.__file__).parent
MODULE_PATHS = sorted(PACKAGE_DIR.glob("*.py"))


def test_the_source_checks_see_every_module_of_the_package() -> None:
    assert PACKAGE_DIR.name == "expression"
    assert {path.name for path in MODULE_PATHS} >= {"__init__.py", "tokens.py", "parser.py", "evaluate.py"}


@pytest.mark.parametrize("path", MODULE_PATHS, ids=lambda path: path.name)
def test_module_source_never_calls_eval_exec_or_compile(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    without_regex_compile = text.replace("re.compile(", "")
    for needle in ("eval(", "exec(", "compile("):
        assert needle not in without_regex_compile, needle


@pytest.mark.parametrize("path", MODULE_PATHS, ids=lambda path: path.name)
def test_module_names_no_code_execution_builtins(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    forbidden = {"eval", "exec", "compile", "__import__", "getattr", "setattr", "globals", "locals", "vars"}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & forbidden
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert "ast" not in imported
    compile_calls = [
        ast.unparse(node.func.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
    ]
    assert set(compile_calls) <= {"re"}


def test_the_package_compiles_only_regular_expressions() -> None:
    compile_calls = [
        ast.unparse(node.func.value)
        for path in MODULE_PATHS
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
    ]
    assert compile_calls and set(compile_calls) == {"re"}


FUZZ_ALPHABET = ' ()[],.!=<>&|"\'\\-0123456789abcehlnprstuxyzA_\n\u00e9'


def test_mutated_sources_compile_or_raise_expression_error() -> None:
    """Seeded fuzzing: any text either compiles or raises ExpressionError."""
    seeds = [
        'header["X-Tier"] == "gold" && !path.startsWith("/admin") || cookie["beta"] in ["1", "yes"]',
        '(query["n"] >= 10 || host.matches("^a[bc]+$")) && role.lower() != null',
        "!(path.size() < 3) && method in ['GET', -1, 2.5, true, null]",
    ]
    random = Random(20240611)
    compiled = failed = 0
    for _ in range(3000):
        text = list(random.choice(seeds))
        for _ in range(random.randint(1, 4)):
            where = random.randrange(len(text) + 1)
            action = random.random()
            if action < 0.4 and text:
                del text[min(where, len(text) - 1)]
            elif action < 0.8:
                text.insert(where, random.choice(FUZZ_ALPHABET))
            elif text:
                text[min(where, len(text) - 1)] = random.choice(FUZZ_ALPHABET)
        source = "".join(text)
        try:
            expression = Expression(source)
        except ExpressionError as error:
            assert 0 <= error.position <= len(source)
            failed += 1
            continue
        compiled += 1
        assert expression.evaluate(REQUEST) in (True, False)
        assert expression.evaluate(ConstantFacts(None)) in (True, False)
        assert expression.evaluate(ConstantFacts(7)) in (True, False)
    assert compiled > 100 and failed > 100  # the mutations exercised both sides
