"""``graywsgi validate --openapi FILE [--rules FILE]``."""

from __future__ import annotations

import argparse
import io
import shutil
import typing as t
from pathlib import Path

import pytest

from graywsgi.cli.validate import add_validate_parser, main, run_validate

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "openapi"
RULES = ROOT / "examples" / "rules.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="graywsgi")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run_validate(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_a_valid_document_prints_a_table_of_each_operations_rules() -> None:
    code, out, err = run("--openapi", str(DATA / "orders-3.1.yaml"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{DATA / 'orders-3.1.yaml'}: OK -- OpenAPI 3.1.0, 9 operations, 17 gray rules"
    assert lines[2].split() == ["OPERATION", "FIELD", "APPLIES", "TO", "REQUIRED", "CONSTRAINT"]
    rows = [line.split() for line in lines[3:]]
    assert rows[0][:6] == ["GET", "/orders", "query.limit", "gray", "no", '{"type":']
    assert rows[1][:4] == ["query.status", "versions", "^2", "no"]
    assert rows[3][:5] == ["header.X-Client", "colors", "canary", "yes", '{"enum":']
    assert ["DELETE", "/orders/{order_id}", "-", "-", "-", "(no", "gray", "rules)"] in rows
    # the columns line up
    field_column = lines[2].index("FIELD")
    assert all(line[field_column - 2:field_column] == "  " for line in lines[3:])


def test_a_3_0_json_document() -> None:
    code, out, _err = run("--openapi", str(DATA / "payments-3.0.json"))
    assert code == 0
    assert "OpenAPI 3.0.3, 2 operations, 8 gray rules" in out
    assert "versions >=1.5.0" in out


def test_with_a_rule_file() -> None:
    code, out, err = run("--openapi", str(DATA / "orders-3.1.yaml"), "--rules", str(RULES))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{RULES}: OK -- clusters canary, stable, v2; default stable; 3 rules"


def test_routes_must_be_clusters_of_the_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("clusters:\n  stable: {}\n  beta: {}\nrules: []\n", "utf-8")
    code, out, err = run("--openapi", str(DATA / "orders-3.1.yaml"), "--rules", str(rules))
    assert code == 1
    assert err.splitlines() == [
        f"{DATA / 'orders-3.1.yaml'}:64: POST /orders: #/paths/~1orders/post/x-gray-rules/rules/2: "
        f"applies_to.routes names 'canary', not a cluster of {rules} (clusters: beta, stable)"
    ]
    assert "17 gray rules" in out  # the table is still printed


def test_a_broken_rule_file_fails(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("clusters: {}\nrules: [{}]\n", "utf-8")
    code, _out, err = run("--openapi", str(DATA / "orders-3.1.yaml"), "--rules", str(rules))
    assert code == 1
    assert err.startswith(f"{rules}:")


def test_a_broken_document_fails_with_each_problem(tmp_path: Path) -> None:
    shutil.copy(DATA / "common.yaml", tmp_path)
    text = (DATA / "orders-3.1.yaml").read_text("utf-8")
    broken = tmp_path / "orders.yaml"
    broken.write_text(text.replace("field: query.limit", "field: query.limt").replace("{enum: [csv, json]}", "{enum: csv}"), "utf-8")
    code, out, err = run("--openapi", str(broken))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{broken}:31: GET /orders: #/paths/~1orders/get/x-gray-rules/rules/0/field: "
        "query parameter 'limt' is not defined by the operation (defined: limit, status, tag)",
        f"{broken}:172: GET /orders/export.{{format}}: #/paths/~1orders~1export.{{format}}/get/x-gray-rules/rules/0/schema/enum: "
        "x-gray-rules: 'csv' is not of type 'array'",
    ]


def test_validate_needs_rules_or_openapi(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert "give --rules FILE, --openapi FILE or both" in capsys.readouterr().err


def test_validate_a_rule_file_alone(capsys: pytest.CaptureFixture[str]) -> None:
    rules = Path(__file__).resolve().parents[2] / "examples" / "seven_steps" / "rules.yaml"
    assert main(["validate", "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "OK -- clusters canary, stable" in out and "plan: checkout / canary: dark-launch (0 %)" in out


def test_main_prints_to_the_standard_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--openapi", str(DATA / "payments-3.0.json")]) == 0
    assert "POST /payments" in capsys.readouterr().out


def test_the_graywsgi_command_has_validate() -> None:
    from graywsgi import cli

    commands = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if "validate" not in t.cast(dict[str, t.Any], commands):
        pytest.skip("graywsgi.cli does not register the validate command yet")
    assert cli.main(["validate", "--openapi", str(DATA / "payments-3.0.json")]) == 0
