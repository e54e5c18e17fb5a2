"""The per-request checks of the gray rules (graywsgi/prevalidation/gray_rule_checks.py): capped values, the fast check."""

from __future__ import annotations

import json
import typing as t

import pytest

from graywsgi.prevalidation.layer import PreValidation
from tests.prevalidation.helpers import GRAY, client_for


def test_received_values_are_capped(orders: PreValidation) -> None:
    client, _app = client_for(orders)
    huge = "x" * 10_000
    problem = client.post("/orders", json={"customer": {"email": huge}, "items": [{"qty": 1}]}, headers=GRAY).json
    (error,) = problem["errors"]
    assert len(error["received"]) == 120 and error["received"].endswith("...")
    assert len(error["message"]) <= 120
    assert len(json.dumps(problem)) < 1000


# --- the plain-Python fast check never disagrees with jsonschema ---------------------


FAST_CASES = [
    pytest.param({"type": "integer", "minimum": 1, "maximum": 10}, [0, 1, 10, 11, 1.0, True, "5", None], id="integer bounds"),
    pytest.param({"type": "number", "exclusiveMinimum": 0}, [0, 0.0, 1e-9, -1, False, "1"], id="exclusive number"),
    pytest.param({"type": ["string", "null"], "maxLength": 3}, ["abc", "abcd", None, "日本語", "日本語x", 3], id="type list"),
    pytest.param({"enum": ["a", 1, True, None]}, ["a", "b", 1, 1.0, True, False, None, 0], id="mixed enum"),
    pytest.param({"const": "0"}, ["0", 0, False, 0.0], id="const text"),
    pytest.param({"pattern": "^[a-z]+$", "minLength": 2}, ["ab", "a", "AB", 12, None], id="pattern and length"),
    pytest.param({"format": "email"}, ["a@b.io", "nope", 5], id="format"),
    pytest.param({"type": "boolean"}, [True, False, 0, 1, "true"], id="boolean"),
]


@pytest.mark.parametrize("schema, values", FAST_CASES)
def test_the_fast_check_only_ever_says_valid_when_jsonschema_does(schema: dict[str, t.Any], values: list[t.Any]) -> None:
    import jsonschema

    from graywsgi.prevalidation.gray_rule_checks import FORMAT_CHECKER, _fast_check

    fast = _fast_check(schema)
    assert fast is not None
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    for value in values:
        if fast(value):
            assert validator.is_valid(value), (schema, value)
    assert any(fast(value) for value in values), "the fast path never helps"


def test_nested_constraints_have_no_fast_check() -> None:
    from graywsgi.prevalidation.gray_rule_checks import _fast_check

    assert _fast_check({"type": "array", "items": {"maximum": 3}}) is None
