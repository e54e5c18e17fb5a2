"""Tests of graywsgi.rules.expression.compiled: the Expression object (source, equality, pickling, threads)."""

from __future__ import annotations

import inspect
import pickle
import sys
import threading

import pytest

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.facts import MappingFacts
from graywsgi.rules.expression.limits import MAX_DEPTH
from tests.rules.expression.helpers import REQUEST, nested


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(42, id="int"),
        pytest.param(None, id="None"),
        pytest.param(b'path == "/"', id="bytes"),
    ],
)
def test_source_must_be_a_string(source: object) -> None:
    with pytest.raises(ExpressionError, match="an expression must be a string"):
        Expression(source)  # type: ignore[arg-type]


def test_repr_equality_hash_and_pickle() -> None:
    source = 'header["X-Tier"] == "gold"'
    expression = Expression(source)
    assert repr(expression) == "Expression('header[\"X-Tier\"] == \"gold\"')"
    assert expression.source == source
    assert expression == Expression(source)
    assert expression != Expression('header["X-Tier"] == "silver"')
    assert expression != source
    assert len({expression, Expression(source)}) == 1
    copy = pickle.loads(pickle.dumps(expression))
    assert copy == expression
    assert copy.evaluate(REQUEST) is True


def test_expression_is_immutable() -> None:
    expression = Expression("true")
    with pytest.raises(AttributeError):
        expression.source = "false"
    assert expression.evaluate(REQUEST) is True


THREAD_CASES = [
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "gold"}), True),
    (MappingFacts({"path": "/admin/users"}, headers={"X-Tier": "gold"}), False),
    (MappingFacts({"path": "/admin/users"}, cookies={"beta": "yes"}), True),
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "silver"}, cookies={"beta": "no"}), False),
    (MappingFacts({"path": "/shop"}, headers={"X-Tier": "gold"}, cookies={"beta": "1"}), True),
    (MappingFacts(), False),
]


def test_one_expression_shared_by_eight_threads() -> None:
    expression = Expression(
        'header["X-Tier"] == "gold" && !path.startsWith("/admin") || cookie["beta"] in ["1", "yes"]'
    )
    threads_count, rounds = 8, 500
    barrier = threading.Barrier(threads_count)
    right = [0] * threads_count
    wrong: list[tuple[int, int]] = []

    def work(index: int) -> None:
        barrier.wait()
        for round_ in range(rounds):
            # each thread walks the cases from a different start, so that
            # neighbours evaluate different facts at the same moment
            for offset in range(len(THREAD_CASES)):
                facts, expected = THREAD_CASES[(index + round_ + offset) % len(THREAD_CASES)]
                if expression.evaluate(facts) is expected:
                    right[index] += 1
                else:
                    wrong.append((index, round_))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert right == [rounds * len(THREAD_CASES)] * threads_count


def test_a_deep_caller_stack_gets_an_expression_error() -> None:
    source = nested("parentheses", MAX_DEPTH)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        with pytest.raises(ExpressionError, match="nests too deeply for the current stack"):
            Expression(source)
    finally:
        sys.setrecursionlimit(limit)
    Expression(source)
