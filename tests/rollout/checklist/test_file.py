"""graywsgi.rollout.checklist.file: the checklist file -- loading, schema, dependencies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from graywsgi.rollout.checklist.file import (
    KINDS,
    checklist_schema,
    load_checklist,
    parse_checklist,
)
from graywsgi.rules.files import ConfigFileError
from tests.rollout.checklist.helpers import ROOT, load

GOLDEN = ROOT / "examples" / "checklists" / "golden.yaml"


def test_schema_is_valid_and_lists_every_kind() -> None:
    schema = checklist_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert tuple(schema["$defs"]["check"]["properties"]["kind"]["enum"]) == KINDS


def test_golden_example_loads_with_the_seven_golden_checks() -> None:
    checklist = load_checklist(GOLDEN)
    assert checklist.requires_signoff is True
    names = [check.name for check in checklist.checks]
    for golden in (
        "schema-rolled-back",
        "cache-keys-cleared",
        "old-instances-deregistered",
        "consumer-offsets-reset",
        "external-api-compatible",
        "gray-switch-closed",
        "metrics-within-baseline",
    ):
        assert golden in names
    assert {check.kind for check in checklist.checks} == set(KINDS)
    metrics = checklist.check("metrics-within-baseline")
    assert metrics.options["max_deviation_percent"] == 10
    assert checklist.check("gray-switch-closed").depends_on == ("store-reachable",)


def test_json_checklist_loads(tmp_path: Path) -> None:
    document = {
        "requires_signoff": False,
        "checks": [{"name": "a", "kind": "shell", "timeout": 5, "command": ["true"]}],
    }
    checklist = load(tmp_path, json.dumps(document, indent=2), name="checklist.json")
    assert checklist.checks[0].name == "a" and checklist.checks[0].timeout == 5.0


CONFIG_ERRORS = [
    pytest.param("checks: []\n", r"checklist.yaml:1: \$\.checks: \[\] should be non-empty", id="no checks"),
    pytest.param("- a\n", r"checklist.yaml:1: \$: the top level must be a mapping", id="top level not a mapping"),
    pytest.param(
        "checks:\n  - name: a\n    kind: telnet\n    timeout: 1\n",
        r"checklist.yaml:3: \$\.checks\[0\]\.kind: 'telnet' is not one of \['http'",
        id="unknown kind",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    command: ['true']\n",
        r"checklist.yaml:2: \$\.checks\[0\]: 'timeout' is a required property",
        id="missing timeout",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: -1\n    command: [x]\n",
        r"checklist.yaml:4: \$\.checks\[0\]\.timeout: -1 is less than or equal to the minimum of 0",
        id="negative timeout",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    expect_stauts: 200\n",
        r"checklist.yaml:6: \$\.checks\[0\]: Additional properties are not allowed \('expect_stauts' was unexpected\)",
        id="misspelt option names its line",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: ftp://x/\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.url: 'ftp://x/' does not match",
        id="only http and https URLs",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: 'http://:80/'\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.url: 'http://:80/' is not an http:// or https:// URL with a host",
        id="URL without a host",
    ),
    pytest.param(
        "checks:\n  - {name: a, kind: shell, timeout: 1, command: [x]}\n  - {name: a, kind: shell, timeout: 1, command: [y]}\n",
        r"checklist.yaml:3: \$\.checks\[1\]\.name: duplicate check name 'a' \(also checks\[0\]\)",
        id="duplicate names",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    depends_on:\n      - b\n",
        r"checklist.yaml:7: \$\.checks\[0\]\.depends_on\[0\]: unknown check 'b' \(checks: a\)",
        id="unknown dependency",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    depends_on: [a]\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.depends_on\[0\]: a check cannot depend on itself",
        id="self dependency",
    ),
    pytest.param(
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 1, command: [x], depends_on: [c]}\n"
        "  - {name: b, kind: shell, timeout: 1, command: [x], depends_on: [a]}\n"
        "  - {name: c, kind: shell, timeout: 1, command: [x], depends_on: [b]}\n",
        r"checklist.yaml:2: \$\.checks\[0\]\.depends_on: dependency cycle: a -> c -> b -> a",
        id="dependency cycle",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: \"echo 'unclosed\"\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command: cannot split the command: No closing quotation",
        id="unsplittable command",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [x]\n    output_match: '(unclosed'\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.output_match: invalid regular expression: missing \)",
        id="bad regex",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    json_field: a..b\n",
        r"checklist.yaml:6: \$\.checks\[0\]\.json_field: 'a\.\.b' has an empty key",
        id="empty key in a path",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: gray_switch_closed\n    timeout: 1\n    state: http://example.com/state\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.state: 'http://example\.com/state': use a file path or redis://",
        id="state location",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: python\n    timeout: 1\n    callable: os.path.exists\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.callable: 'os\.path\.exists' does not match",
        id="callable needs module:function",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: metrics_within_baseline\n    timeout: 1\n    url: http://x/\n",
        r"checklist.yaml:2: \$\.checks\[0\]: 'route' is a required property",
        id="metrics needs a route",
    ),
    pytest.param(
        "requires_signoff: yes please\nchecks: [{name: a, kind: shell, timeout: 1, command: [x]}]\n",
        r"checklist.yaml:1: \$\.requires_signoff: 'yes please' is not of type 'boolean'",
        id="requires_signoff is a boolean",
    ),
    pytest.param(
        "checks:\n  - name: a\n    name: b\n",
        r"checklist.yaml:3: \$\.checks\[0\]: duplicate key 'name'",
        id="duplicate YAML key",
    ),
    pytest.param("checks: [\n", r"checklist.yaml:2: \$: invalid YAML", id="YAML syntax"),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: [true]\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command\[0\]: True is not of type 'string' \(YAML reads unquoted",
        id="YAML boolean where a string is needed",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: shell\n    timeout: 1\n    command: 5\n",
        r"checklist.yaml:5: \$\.checks\[0\]\.command: 5 is not of type 'string' or 'array'",
        id="neither shape",
    ),
    pytest.param(
        "checks:\n  - name: a\n    kind: http\n    timeout: 1\n    url: http://x/\n    json_field:\n      - a\n      - -1\n",
        r"checklist.yaml:8: \$\.checks\[0\]\.json_field\[1\]: -1 is less than the minimum of 0",
        id="the item that is wrong",
    ),
]


@pytest.mark.parametrize("text, message", CONFIG_ERRORS)
def test_config_errors_name_file_line_and_json_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "checklist.yaml"))


def test_json_errors_name_the_line(tmp_path: Path) -> None:
    text = '{\n  "checks": [\n    {"name": "a", "kind": "shell",\n     "timeout": "soon", "command": ["x"]}\n  ]\n}\n'
    with pytest.raises(ConfigFileError, match=r"checklist\.json:4: \$\.checks\[0\]\.timeout: 'soon' is not of type"):
        load(tmp_path, text, name="checklist.json")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = (
        "checks:\n"
        "  - {name: a, kind: shell, timeout: 1, command: [x], depends_on: [nope]}\n"
        "  - {name: b, kind: shell, timeout: 1, command: [x], output_match: '('}\n"
    )
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, text)
    assert len(caught.value.problems) == 2


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: \$: cannot read the file"):
        load_checklist(tmp_path / "missing.yaml")


def test_docs_page_examples_load(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "checklist.md").read_text("utf-8")
    blocks = re.findall(r"```yml\n(.*?)```", page, re.DOTALL)
    assert len(blocks) >= 2
    for n, block in enumerate(blocks):
        checklist = parse_checklist(block, filename=f"checklist.md#{n}.yaml", directory=str(tmp_path))
        assert checklist.checks
