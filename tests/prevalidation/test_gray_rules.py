"""Compiling x-gray-rules and their published schema (graywsgi/prevalidation/gray_rules.py)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from graywsgi.prevalidation.gray_rules import compile_gray_rules, gray_rules_schema
from graywsgi.prevalidation.openapi import load_openapi
from tests.prevalidation.helpers import DATA

pytestmark = pytest.mark.usefixtures("no_network")


def test_both_documents_compile() -> None:
    for name, operations, rules in (("orders-3.1.yaml", 9, 17), ("payments-3.0.json", 2, 8)):
        document = load_openapi(DATA / name)
        compiled = compile_gray_rules(document)
        assert len(compiled) == operations
        assert sum(len(c.rules) for c in compiled) == rules


def test_every_rule_in_the_test_documents_matches_the_published_schema() -> None:
    validator = jsonschema.Draft202012Validator(gray_rules_schema())
    for name in ("orders-3.1.yaml", "payments-3.0.json"):
        for operation in load_openapi(DATA / name).operations:
            if operation.gray_rules is not None:
                validator.validate(operation.gray_rules.value)


def test_the_published_schema_is_a_valid_json_schema() -> None:
    schema = gray_rules_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    shipped = json.loads((Path(__file__).resolve().parents[2] / "graywsgi" / "schema" / "x-gray-rules.schema.json").read_text())
    assert shipped == schema
