"""Rule files: loading, syntax, schema and semantic errors (graywsgi.rules.files).

In the table fixtures the line an error must point at is marked with a
trailing ``# <--`` comment (a YAML comment; stripped from JSON fixtures) and
the test finds it with :func:`marked_line` rather than hard-coding it.

Tests that once pinned known bugs with ``xfail(strict=True)`` now assert the
fixed behaviour; no test here is expected to fail.
"""

from __future__ import annotations

import json
import re
import textwrap
import typing as t
from pathlib import Path

import jsonschema
import pytest

from graywsgi.rules.files import FORMATS, ConfigFileError, load_rules, parse_rules, rules_schema
from graywsgi.errors import ConfigurationError
from graywsgi.rules.routing import MAX_REGEX_PATH_RULES, CompiledRules, json_path
from graywsgi.rules.model import RuleSet

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "graywsgi" / "schema" / "rules.schema.json"
MARK = "# <--"


# --- helpers -----------------------------------------------------------------


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def marked_line(text: str, mark: str = MARK) -> int:
    """The 1-based number of the one line of ``text`` that contains ``mark``."""
    found = [number for number, line in enumerate(text.splitlines(), 1) if mark in line]
    assert len(found) == 1, f"{mark!r} must mark exactly one line, found {found}"
    return found[0]


def load_error(path: Path) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        load_rules(path)
    return info.value


# --- 1. a realistic rule set in three formats --------------------------------

SHOP_YAML = dedent(
    """
    # Gray release rules of the shop front end.
    version: 1
    default_cluster: stable
    no_match: default
    clusters:
      stable:
        upstream: http://10.0.0.7:8000
        group: control
      canary:
        upstream: http://10.0.0.8:8000
        group: treatment
      beta: {}
    colors:
      canary: canary
      gray: canary
      stable: stable
      beta: beta
    key:
      from: header
      name: X-User-Id
    fallback_key:
      from: cookie
      name: session
    rules:
      - name: checkout
        match:
          host: [shop.example.com, "*.shop.example.com"]
          path: {prefix: /checkout}
          headers:
            - {name: X-Tier, exact: gold}
          query:
            - {name: debug, present: false}
          cookies:
            - {name: beta, prefix: "y"}
          api_version: ">=2.0.0 <3"
          when: 'method == "POST" || header["X-Force"] == "1"'
        factors:
          host: 0.9
          path: 1.0
        versions:
          - {exact: 2.1.0-rc.1, cluster: beta}
          - {range: "^3", cluster: beta, source: api_version}
        split:
          - {cluster: canary, weight: 20, group: treatment-a}
          - {cluster: beta, weight: 5}
        mode: hash
        salt: checkout-2024
      - name: orders
        match:
          path: {template: "/orders/{id}"}
        split:
          - {cluster: canary, weight: 50}
        mode: percent
      - name: legacy
        match:
          path: {regex: "/v1/.*"}
          headers:
            - {name: X-Legacy, regex: "yes|true"}
    """
)

SHOP_JSON = dedent(
    """
    {
      "version": 1,
      "default_cluster": "stable",
      "no_match": "default",
      "clusters": {
        "stable": {"upstream": "http://10.0.0.7:8000", "group": "control"},
        "canary": {"upstream": "http://10.0.0.8:8000", "group": "treatment"},
        "beta": {}
      },
      "colors": {"canary": "canary", "gray": "canary", "stable": "stable", "beta": "beta"},
      "key": {"from": "header", "name": "X-User-Id"},
      "fallback_key": {"from": "cookie", "name": "session"},
      "rules": [
        {
          "name": "checkout",
          "match": {
            "host": ["shop.example.com", "*.shop.example.com"],
            "path": {"prefix": "/checkout"},
            "headers": [{"name": "X-Tier", "exact": "gold"}],
            "query": [{"name": "debug", "present": false}],
            "cookies": [{"name": "beta", "prefix": "y"}],
            "api_version": ">=2.0.0 <3",
            "when": "method == \\"POST\\" || header[\\"X-Force\\"] == \\"1\\""
          },
          "factors": {"host": 0.9, "path": 1.0},
          "versions": [
            {"exact": "2.1.0-rc.1", "cluster": "beta"},
            {"range": "^3", "cluster": "beta", "source": "api_version"}
          ],
          "split": [
            {"cluster": "canary", "weight": 20, "group": "treatment-a"},
            {"cluster": "beta", "weight": 5}
          ],
          "mode": "hash",
          "salt": "checkout-2024"
        },
        {
          "name": "orders",
          "match": {"path": {"template": "/orders/{id}"}},
          "split": [{"cluster": "canary", "weight": 50}],
          "mode": "percent"
        },
        {
          "name": "legacy",
          "match": {
            "path": {"regex": "/v1/.*"},
            "headers": [{"name": "X-Legacy", "regex": "yes|true"}]
          }
        }
      ]
    }
    """
)

SHOP_TOML = dedent(
    """
    # Gray release rules of the shop front end.
    version = 1
    default_cluster = "stable"
    no_match = "default"

    [clusters.stable]
    upstream = "http://10.0.0.7:8000"
    group = "control"

    [clusters.canary]
    upstream = "http://10.0.0.8:8000"
    group = "treatment"

    [clusters.beta]

    [colors]
    canary = "canary"
    gray = "canary"
    stable = "stable"
    beta = "beta"

    [key]
    from = "header"
    name = "X-User-Id"

    [fallback_key]
    from = "cookie"
    name = "session"

    [[rules]]
    name = "checkout"
    factors = { host = 0.9, path = 1.0 }
    mode = "hash"
    salt = "checkout-2024"

    [rules.match]
    host = ["shop.example.com", "*.shop.example.com"]
    path = { prefix = "/checkout" }
    headers = [{ name = "X-Tier", exact = "gold" }]
    query = [{ name = "debug", present = false }]
    cookies = [{ name = "beta", prefix = "y" }]
    api_version = ">=2.0.0 <3"
    when = 'method == "POST" || header["X-Force"] == "1"'

    [[rules.versions]]
    exact = "2.1.0-rc.1"
    cluster = "beta"

    [[rules.versions]]
    range = "^3"
    cluster = "beta"
    source = "api_version"

    [[rules.split]]
    cluster = "canary"
    weight = 20
    group = "treatment-a"

    [[rules.split]]
    cluster = "beta"
    weight = 5

    [[rules]]
    name = "orders"
    match = { path = { template = "/orders/{id}" } }
    split = [{ cluster = "canary", weight = 50 }]
    mode = "percent"

    [[rules]]
    name = "legacy"

    [rules.match]
    path = { regex = "/v1/.*" }
    headers = [{ name = "X-Legacy", regex = "yes|true" }]
    """
)

SHOP_DICT: dict[str, t.Any] = {
    "version": 1,
    "clusters": {
        "stable": {"upstream": "http://10.0.0.7:8000", "group": "control"},
        "canary": {"upstream": "http://10.0.0.8:8000", "group": "treatment"},
        "beta": {},
    },
    "default_cluster": "stable",
    "no_match": "default",
    "colors": {"canary": "canary", "gray": "canary", "stable": "stable", "beta": "beta"},
    "key": {"from": "header", "name": "X-User-Id"},
    "fallback_key": {"from": "cookie", "name": "session"},
    "rules": [
        {
            "name": "checkout",
            "match": {
                "host": ["shop.example.com", "*.shop.example.com"],
                "path": {"prefix": "/checkout"},
                "headers": [{"name": "X-Tier", "exact": "gold"}],
                "query": [{"name": "debug", "present": False}],
                "cookies": [{"name": "beta", "prefix": "y"}],
                "api_version": ">=2.0.0 <3",
                "when": 'method == "POST" || header["X-Force"] == "1"',
            },
            "factors": {"host": 0.9, "path": 1.0},
            "versions": [
                {"cluster": "beta", "exact": "2.1.0-rc.1", "source": "version"},
                {"cluster": "beta", "range": "^3", "source": "api_version"},
            ],
            "split": [
                {"cluster": "canary", "weight": 20.0, "group": "treatment-a"},
                {"cluster": "beta", "weight": 5.0},
            ],
            "mode": "hash",
            "salt": "checkout-2024",
        },
        {
            "name": "orders",
            "match": {"path": {"template": "/orders/{id}"}},
            "split": [{"cluster": "canary", "weight": 50.0}],
            "mode": "percent",
        },
        {
            "name": "legacy",
            "match": {"path": {"regex": "/v1/.*"}, "headers": [{"name": "X-Legacy", "regex": "yes|true"}]},
            "mode": "hash",
        },
    ],
}

SHOP_FILES = [
    pytest.param("rules.yaml", SHOP_YAML, id="yaml"),
    pytest.param("rules.yml", SHOP_YAML, id="yml suffix"),
    pytest.param("RULES.YAML", SHOP_YAML, id="upper-case suffix"),
    pytest.param("rules.json", SHOP_JSON, id="json"),
    pytest.param("rules.toml", SHOP_TOML, id="toml"),
]


@pytest.mark.parametrize(("name", "text"), SHOP_FILES)
def test_shop_rules_load_to_the_same_rule_set(tmp_path: Path, name: str, text: str) -> None:
    compiled = load_rules(write(tmp_path, name, text))
    assert isinstance(compiled, CompiledRules)
    assert compiled.ruleset.to_dict() == SHOP_DICT
    # The rules really are compiled and usable.
    orders = compiled.decide_for(host="shop.example.com", path="/orders/42", gray_id="u1")
    assert orders is not None and orders.rule == "orders"
    legacy = compiled.decide_for(path="/v1/cart", headers={"X-Legacy": "yes"}, gray_id="u1")
    assert legacy == ("stable", "control", "legacy", "default")


def test_the_three_formats_agree(tmp_path: Path) -> None:
    loaded = {
        name: load_rules(write(tmp_path, name, text))
        for name, text in [("r.yaml", SHOP_YAML), ("r.json", SHOP_JSON), ("r.toml", SHOP_TOML)]
    }
    dicts = [c.ruleset.to_dict() for c in loaded.values()]
    assert dicts[0] == dicts[1] == dicts[2]
    assert all(c.ruleset == loaded["r.yaml"].ruleset for c in loaded.values())
    ids = {c.version_id for c in loaded.values()}
    assert len(ids) == 1
    (version_id,) = ids
    assert re.fullmatch(r"[0-9a-f]{12}", version_id)


@pytest.mark.parametrize(("name", "text"), SHOP_FILES)
def test_to_dict_round_trips(tmp_path: Path, name: str, text: str) -> None:
    ruleset = load_rules(write(tmp_path, name, text)).ruleset
    again = RuleSet.from_dict(ruleset.to_dict())
    assert again == ruleset
    assert again.to_dict() == ruleset.to_dict()
    assert again.version_id == ruleset.version_id
    assert CompiledRules(again).version_id == ruleset.version_id
    # to_dict() is itself a valid rule file.
    jsonschema.Draft202012Validator(rules_schema()).validate(ruleset.to_dict())
    reparsed = parse_rules(json.dumps(ruleset.to_dict()), filename="again.json")
    assert reparsed.ruleset.to_dict() == ruleset.to_dict()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("clusters: {stable: {}, beta: {}}\n", id="no canary cluster"),
        pytest.param("clusters: {blue: {}, green: {}}\ndefault_cluster: blue\n", id="blue-green clusters"),
    ],
)
def test_round_trip_without_the_default_colour_clusters(text: str) -> None:
    ruleset = parse_rules(text, filename="rules.yaml").ruleset
    CompiledRules(RuleSet.from_dict(ruleset.to_dict()))
    parse_rules(json.dumps(ruleset.to_dict()), filename="again.json")


SAME_CONTENT = [
    pytest.param(SHOP_YAML.replace("# Gray release rules of the shop front end.\n", ""), id="comment removed"),
    pytest.param(SHOP_YAML.replace("weight: 20,", "weight: 20.0,"), id="weight 20 written as 20.0"),
    pytest.param(
        SHOP_YAML.replace("no_match: default\n", "").replace("version: 1\n", ""), id="defaults left out"
    ),
    pytest.param(
        SHOP_YAML.replace("  beta: {}\n", "").replace("clusters:\n", "clusters:\n  beta: {}\n", 1),
        id="clusters in another order",
    ),
    pytest.param(
        SHOP_YAML.replace('path: {regex: "/v1/.*"}', "path:\n        regex: /v1/.*"), id="block instead of flow style"
    ),
]


@pytest.mark.parametrize("text", SAME_CONTENT)
def test_version_id_is_stable_for_equal_content(text: str) -> None:
    assert text != SHOP_YAML
    reference = parse_rules(SHOP_YAML, filename="a.yaml").version_id
    assert parse_rules(text, filename="b.yaml").version_id == reference
    # It is a pure function of the content: loading again gives it again.
    assert parse_rules(SHOP_YAML, filename="a.yaml").version_id == reference


CHANGED_CONTENT = [
    pytest.param(SHOP_YAML.replace("weight: 20,", "weight: 25,"), id="canary weight raised"),
    pytest.param(SHOP_YAML.replace("salt: checkout-2024", "salt: checkout-2025"), id="salt changed"),
    pytest.param(SHOP_YAML.replace("mode: percent", "mode: hash"), id="mode changed"),
    pytest.param(SHOP_YAML.replace("no_match: default", "no_match: '404'"), id="no_match changed"),
    pytest.param(SHOP_YAML.replace("upstream: http://10.0.0.8:8000", "upstream: http://10.0.0.9:8000"), id="upstream"),
    pytest.param(SHOP_YAML + "  - name: extra\n", id="rule added"),
]


@pytest.mark.parametrize("text", CHANGED_CONTENT)
def test_version_id_changes_with_the_content(text: str) -> None:
    assert text != SHOP_YAML
    assert parse_rules(text, filename="b.yaml").version_id != parse_rules(SHOP_YAML, filename="a.yaml").version_id


def test_version_id_ignores_int_versus_float_factor() -> None:
    as_int = parse_rules(SHOP_YAML.replace("path: 1.0", "path: 1"), filename="a.yaml").ruleset
    as_float = parse_rules(SHOP_YAML, filename="b.yaml").ruleset
    assert as_int.to_dict() == as_float.to_dict()
    assert as_int.version_id == as_float.version_id


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("rules.yaml", "id: shop-2024.06\n" + SHOP_YAML, id="yaml"),
        pytest.param("rules.json", SHOP_JSON.replace("{\n", '{\n  "id": "shop-2024.06",\n', 1), id="json"),
        pytest.param("rules.toml", 'id = "shop-2024.06"\n' + SHOP_TOML, id="toml"),
    ],
)
def test_explicit_id_is_the_version_id(tmp_path: Path, name: str, text: str) -> None:
    compiled = load_rules(write(tmp_path, name, text))
    assert compiled.version_id == compiled.ruleset.version_id == "shop-2024.06"
    assert compiled.ruleset.to_dict()["id"] == "shop-2024.06"
    assert RuleSet.from_dict(compiled.ruleset.to_dict()).version_id == "shop-2024.06"
    # With an id, a content change keeps the id the operator chose.
    changed = text.replace("weight: 20,", "weight: 25,").replace('"weight": 20,', '"weight": 25,')
    changed = changed.replace("weight = 20\n", "weight = 25\n")
    assert changed != text
    assert parse_rules(changed, filename=name).version_id == "shop-2024.06"


# --- 2. syntax errors --------------------------------------------------------

SYNTAX_ERRORS = [
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\n canary: {}  # <--\n",
        "$",
        "invalid YAML: expected <block end>",
        id="yaml: key indented less than its siblings",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\nrules:\n  - name: a\n     split: []  # <--\n",
        "$",
        "invalid YAML: mapping values are not allowed here",
        id="yaml: key indented more than its siblings",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n\tstable: {}  # <--\n",
        "$",
        "invalid YAML: found character '\\t' that cannot start any token",
        id="yaml: tab indentation",
    ),
    pytest.param(
        "rules.yaml",
        'clusters: {stable: {}}\nrules:\n  - name: "checkout  # <--',
        "$",
        "invalid YAML: found unexpected end of stream",
        id="yaml: unterminated string",
    ),
    pytest.param(
        "rules.yaml",
        "clusters: {stable: {}}\n---  # <--\nclusters: {canary: {}}\n",
        "$",
        "invalid YAML: but found another document",
        id="yaml: two documents",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\n  stable: {group: a}  # <--\n",
        "$.clusters",
        "duplicate key 'stable'",
        id="yaml: duplicate cluster",
    ),
    pytest.param(
        "rules.yaml",
        "clusters: {stable: {}}\nrules:\n  - name: a\n    mode: hash\n    mode: percent  # <--\n",
        "$.rules[0]",
        "duplicate key 'mode'",
        id="yaml: duplicate key inside a rule",
    ),
    pytest.param(
        "rules.yaml",
        "rules: []\nclusters: {stable: {}}\nrules: []  # <--\n",
        "$",
        "duplicate key 'rules'",
        id="yaml: duplicate top-level key",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\n  on: {}  # <--\n",
        "$.clusters",
        "keys must be strings, got 'on'",
        id="yaml: boolean key (on)",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\n  1: {}  # <--\n",
        "$.clusters",
        "keys must be strings, got '1'",
        id="yaml: integer key",
    ),
    pytest.param(
        "rules.yaml",
        "clusters:\n  stable: {}\n  ~: {}  # <--\n",
        "$.clusters",
        "keys must be strings, got '~'",
        id="yaml: null key",
    ),
    pytest.param(
        "rules.yaml",
        "clusters: {stable: {}}\nrules:\n  - name: a\n    factors: {2024-01-01: 1}  # <--\n",
        "$.rules[0].factors",
        "keys must be strings, got '2024-01-01'",
        id="yaml: date key",
    ),
    pytest.param("rules.yaml", "  # <--\n", "$", "the top level must be a mapping", id="yaml: empty file"),
    pytest.param(
        "rules.yaml", "# only a comment  # <--\n", "$", "the top level must be a mapping", id="yaml: comments only"
    ),
    pytest.param(
        "rules.yaml",
        "- clusters: {stable: {}}  # <--\n",
        "$",
        "the top level must be a mapping (an object)",
        id="yaml: top level is a list",
    ),
    pytest.param(
        "rules.yaml", "stable  # <--\n", "$", "the top level must be a mapping (an object)", id="yaml: top level is a string"
    ),
    pytest.param(
        "rules.json",
        '{\n  "clusters": {\n    "stable": {},\n  }  # <--\n}\n',
        "$",
        "invalid JSON: ",
        id="json: trailing comma in an object",
    ),
    pytest.param(
        "rules.json",
        '{\n  "clusters": {"stable": {}},\n  "rules": [\n    {"name": "a"},\n  ]  # <--\n}\n',
        "$",
        "invalid JSON: Expecting value",
        id="json: trailing comma in an array",
    ),
    pytest.param(
        "rules.json",
        '{\n  "clusters": {"stable": {}}\n  "rules": []  # <--\n}\n',
        "$",
        "invalid JSON: Expecting ',' delimiter",
        id="json: missing comma",
    ),
    pytest.param(
        "rules.json",
        "{\n  'clusters': {}  # <--\n}\n",
        "$",
        "invalid JSON: Expecting property name enclosed in double quotes",
        id="json: single quotes",
    ),
    pytest.param("rules.json", "  # <--", "$", "invalid JSON: Expecting value", id="json: empty file"),
    pytest.param(
        "rules.json",
        '[{"clusters": {"stable": {}}}]  # <--',
        "$",
        "the top level must be a mapping (an object)",
        id="json: top level is a list",
    ),
    pytest.param(
        "rules.json",
        '{\n  "clusters": {\n    "stable": {},\n    "stable": {"group": "a"}  # <--\n  }\n}\n',
        "$.clusters",
        "duplicate key 'stable'",
        id="json: duplicate cluster",
    ),
    pytest.param(
        "rules.json",
        '{"clusters": {"stable": {}}, "rules": [{"name": "a", "mode": "hash", "mode": "percent"}]}  # <--',
        "$.rules[0]",
        "duplicate key 'mode'",
        id="json: duplicate key inside a rule",
    ),
    pytest.param(
        "rules.json",
        '{\n  "rules": [],\n  "clusters": {"stable": {}},\n  "rules": []  # <--\n}\n',
        "$",
        "duplicate key 'rules'",
        id="json: duplicate top-level key",
    ),
]


def _strip_marks(text: str) -> str:
    """Remove ``# <--`` marks where the format has no comments (JSON)."""
    return text.replace("  # <--", "").replace("# <--", "")


@pytest.mark.parametrize(("name", "text", "where", "reason"), SYNTAX_ERRORS)
def test_syntax_error_names_file_line_and_reason(
    tmp_path: Path, name: str, text: str, where: str, reason: str
) -> None:
    line = marked_line(text)
    content = _strip_marks(text) if name.endswith(".json") else text
    path = write(tmp_path, name, content)
    error = load_error(path)
    message = str(error)
    assert message.startswith(f"{path}:{line}: {where}: "), message
    assert reason in message
    assert "\n" not in message
    assert error.filename == str(path)
    assert len(error.problems) == 1


def test_json_trailing_comma_message_has_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "clusters": {\n    "stable": {},\n  }\n}\n'
    path = write(tmp_path, "rules.json", text)
    message = str(load_error(path))
    assert message.startswith(f"{path}:4: $: invalid JSON: ")
    assert message.endswith("(column 3)")


# Problems without a line the loader can give (the file, not a place in it).
LINELESS_ERRORS = [
    pytest.param(
        "rules.toml",
        'clusters = {stable = {}}\n[rules\nname = "a"\n',
        "invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 7)",
        id="toml: unclosed table header",
    ),
    pytest.param(
        "rules.toml",
        'clusters = {stable = {}}\n\n[[rules]]\nname = "a"\nmode = hash\n',
        "invalid TOML: Invalid value (at line 5, column 8)",
        id="toml: unquoted string",
    ),
    pytest.param(
        "rules.toml",
        "[clusters.stable]\n[clusters.stable]\n",
        "invalid TOML: Cannot declare ('clusters', 'stable') twice (at line 2, column 17)",
        id="toml: table declared twice",
    ),
    pytest.param(
        "rules.toml",
        'default_cluster = "a"\ndefault_cluster = "b"\n',
        "invalid TOML: Cannot overwrite a value (at line 2, column 22)",
        id="toml: duplicate key",
    ),
    pytest.param(
        "rules.yaml",
        b"clusters:\n  stable: {group: \xff}\n",
        "not UTF-8: 'utf-8' codec can't decode byte 0xff in position 28",
        id="yaml: latin-1 byte",
    ),
    pytest.param(
        "rules.json",
        b'{"clusters": {"st\xe9ble": {}}}',
        "not UTF-8: 'utf-8' codec can't decode byte 0xe9",
        id="json: latin-1 byte",
    ),
    pytest.param(
        "rules.toml",
        "clusters = {stable = {}}\n".encode("utf-16"),
        "not UTF-8: ",
        id="toml: UTF-16 file",
    ),
    pytest.param(
        "rules.ini",
        "clusters: {stable: {}}\n",
        "unknown file type; use one of .json, .toml, .yaml, .yml",
        id="unknown suffix .ini",
    ),
    pytest.param(
        "rules", "clusters: {stable: {}}\n", "unknown file type; use one of .json, .toml, .yaml, .yml", id="no suffix"
    ),
    pytest.param(
        "rules.yaml.bak",
        "clusters: {stable: {}}\n",
        "unknown file type; use one of .json, .toml, .yaml, .yml",
        id="backup suffix after .yaml",
    ),
]


@pytest.mark.parametrize(("name", "content", "reason"), LINELESS_ERRORS)
def test_error_without_line_names_file_and_reason(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    path = write(tmp_path, name, content)
    error = load_error(path)
    message = str(error)
    assert message.startswith(f"{path}: $: "), message
    assert reason in message
    assert "\n" not in message
    assert error.problems[0][0] is None


def test_json_duplicate_key_names_its_line(tmp_path: Path) -> None:
    text = '{\n  "clusters": {\n    "stable": {},\n    "stable": {"group": "a"}\n  }\n}\n'
    path = write(tmp_path, "rules.json", text)
    error = load_error(path)
    assert str(error) == f"{path}:4: $.clusters: duplicate key 'stable'"
    assert error.problems == [(4, ("clusters",), "duplicate key 'stable'")]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("missing.yaml", "cannot read the file: No such file or directory", id="missing file"),
        pytest.param("no-such-dir/rules.json", "cannot read the file: No such file or directory", id="missing folder"),
    ],
)
def test_unreadable_file(tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / name
    error = load_error(path)
    assert str(error) == f"{path}: $: {reason}"
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, ValueError)


def test_a_folder_is_not_a_rule_file(tmp_path: Path) -> None:
    folder = tmp_path / "rules.yaml"
    folder.mkdir()
    assert str(load_error(folder)) == f"{folder}: $: cannot read the file: Is a directory"


def test_load_rules_accepts_str_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", SHOP_YAML)
    assert load_rules(str(path)).ruleset.to_dict() == SHOP_DICT


@pytest.mark.parametrize(
    ("format", "text"),
    [
        pytest.param("yaml", SHOP_YAML, id="yaml"),
        pytest.param("json", SHOP_JSON, id="json"),
        pytest.param("toml", SHOP_TOML, id="toml"),
    ],
)
def test_parse_rules_format_overrides_the_suffix(format: str, text: str) -> None:
    assert parse_rules(text, filename="rules.txt", format=format).ruleset.to_dict() == SHOP_DICT
    assert parse_rules(text.encode("utf-8"), filename="-", format=format).ruleset.to_dict() == SHOP_DICT


def test_parse_rules_unknown_format() -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_rules("clusters: {stable: {}}", filename="rules.yaml", format="ini")
    assert str(info.value) == "rules.yaml: $: unknown format 'ini'"


def test_formats_table() -> None:
    assert dict(FORMATS) == {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("rules.yaml", "clusters: {stable: {}}\nx: " + "[" * 5000 + "]" * 5000 + "\n", id="yaml"),
        pytest.param("rules.json", '{"clusters": {"stable": {}}, "x": ' + "[" * 5000 + "]" * 5000 + "}", id="json"),
        pytest.param("rules.toml", "clusters = {stable = {}}\nx = " + "[" * 5000 + "]" * 5000 + "\n", id="toml"),
    ],
)
def test_deeply_nested_data_is_a_config_file_error(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    error = load_error(path)
    assert str(error) == f"{path}: $: nested too deeply"
    assert error.problems == [(None, (), "nested too deeply")]


# --- 3. schema errors ---------------------------------------------------------

SCHEMA_ERRORS = [
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        colour: {gold: canary}  # <--
        """,
        "$",
        "Additional properties are not allowed ('colour' was unexpected)",
        id="unknown top-level key",
    ),
    pytest.param(
        """
        # A rule file that forgot its clusters.
        rules:  # <--
          - name: checkout
        """,
        "$",
        "'clusters' is a required property",
        id="missing clusters",
    ),
    pytest.param(
        """
        clusters: {}  # <--
        """,
        "$.clusters",
        "{} should be non-empty",
        id="no clusters",
    ),
    pytest.param(
        """
        clusters: {stable: {}, "canary release": {}}  # <--
        """,
        "$.clusters",
        "'canary release' does not match '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'",
        id="cluster name with a space",
    ),
    pytest.param(
        """
        clusters: {stable: {}, -canary: {}}  # <--
        """,
        "$.clusters",
        "'-canary' does not match",
        id="cluster name starting with a dash",
    ),
    pytest.param(
        """
        clusters:
          stable: {upstream: "ftp://10.0.0.7"}  # <--
        """,
        "$.clusters.stable.upstream",
        "'ftp://10.0.0.7' does not match '^https?://'",
        id="upstream not http",
    ),
    pytest.param(
        """
        version: 2  # <--
        clusters: {stable: {}}
        """,
        "$.version",
        "1 was expected",
        id="format version 2",
    ),
    pytest.param(
        """
        clusters: {stable: {}}
        no_match: 404  # <--
        """,
        "$.no_match",
        "404 is not one of ['default', '404']",
        id="no_match as a number",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: 120}  # <--
        """,
        "$.rules[0].split[0].weight",
        "120 is greater than the maximum of 100",
        id="weight over 100",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: stable, weight: 50}
              - {cluster: canary, weight: -5}  # <--
        """,
        "$.rules[0].split[1].weight",
        "-5 is less than the minimum of 0",
        id="negative weight",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: "20"}  # <--
        """,
        "$.rules[0].split[0].weight",
        "'20' is not of type 'number'",
        id="weight as a string",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary}  # <--
        """,
        "$.rules[0].split[0]",
        "'weight' is a required property",
        id="split entry without weight",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split: [{cluster: canary, weight: 20}]
            mode: random  # <--
        """,
        "$.rules[0].mode",
        "'random' is not one of ['hash', 'percent']",
        id="mode not hash or percent",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              headers:
                - {name: X-Tier, exact: gold}
                - {name: X-Beta, exact: "1", prefix: "y"}  # <--
        """,
        "$.rules[0].match.headers[1]",
        "{'name': 'X-Beta', 'exact': '1', 'prefix': 'y'} has too many properties",
        id="header condition with two forms",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              cookies:
                - {name: beta}  # <--
        """,
        "$.rules[0].match.cookies[0]",
        "{'name': 'beta'} does not have enough properties",
        id="cookie condition with no form",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              path: {prefix: /checkout, regex: "/checkout/.*"}  # <--
        """,
        "$.rules[0].match.path",
        "{'prefix': '/checkout', 'regex': '/checkout/.*'} has too many properties",
        id="path with two forms",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              path: {prefix: checkout}  # <--
        """,
        "$.rules[0].match.path.prefix",
        "'checkout' does not match '^/'",
        id="path prefix without a slash",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host: [shop.example.com]
            factors:
              host: 1.5  # <--
            split: [{cluster: canary, weight: 20}]
        """,
        "$.rules[0].factors.host",
        "1.5 is greater than the maximum of 1",
        id="factor over 1",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host: [shop.example.com]
            factors: {hosts: 0.5}  # <--
        """,
        "$.rules[0].factors",
        "Additional properties are not allowed ('hosts' was unexpected)",
        id="factor for an unknown dimension",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host:
                - shop.example.com
                - "shop example.com"  # <--
        """,
        "$.rules[0].match.host[1]",
        "'shop example.com' does not match",
        id="host with a space",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host: ["https://shop.example.com"]  # <--
        """,
        "$.rules[0].match.host[0]",
        "'https://shop.example.com' does not match",
        id="host written as a URL",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host: []  # <--
        """,
        "$.rules[0].match.host",
        "[] should be non-empty",
        id="empty host list",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        key:
          from: header  # <--
        """,
        "$.key",
        "'name' is a required property",
        id="key from header without name",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        fallback_key: {from: session}  # <--
        """,
        "$.fallback_key.from",
        "'session' is not one of ['gray_id', 'header', 'cookie', 'query']",
        id="fallback key from an unknown source",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split: [{cluster: canary, weight: 20}]
          - name: search
            priority: 1  # <--
        """,
        "$.rules[1]",
        "Additional properties are not allowed ('priority' was unexpected)",
        id="unknown property inside a rule",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              path: {prefix: /checkout}
              method: POST  # <--
        """,
        "$.rules[0].match",
        "Additional properties are not allowed ('method' was unexpected)",
        id="unknown property inside match",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - split: [{cluster: canary, weight: 20}]  # <--
        """,
        "$.rules[0]",
        "'name' is a required property",
        id="rule without a name",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            versions:
              - {exact: "2.0.0", range: "^2", cluster: canary}  # <--
        """,
        "$.rules[0].versions[0]",
        "is valid under each of",
        id="version route with exact and range",
    ),
]


@pytest.mark.parametrize(("text", "where", "reason"), SCHEMA_ERRORS)
def test_schema_error_names_file_line_path_and_reason(tmp_path: Path, text: str, where: str, reason: str) -> None:
    text = dedent(text)
    path = write(tmp_path, "rules.yaml", text)
    error = load_error(path)
    message = str(error)
    assert message.startswith(f"{path}:{marked_line(text)}: {where}: "), message
    assert reason in message
    assert "\n" not in message, "expected exactly one problem"


WEIGHT_120 = {
    "yaml": "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    split:\n"
    "      - {cluster: canary, weight: 120}\n",
    "json": '{\n  "clusters": {"stable": {}, "canary": {}},\n  "rules": [\n    {\n      "name": "checkout",\n'
    '      "split": [\n        {"cluster": "canary", "weight": 120}\n      ]\n    }\n  ]\n}\n',
    "toml": 'clusters = {stable = {}, canary = {}}\n\n[[rules]]\nname = "checkout"\n\n'
    '[[rules.split]]\ncluster = "canary"\nweight = 120\n',
}


@pytest.mark.parametrize(
    ("name", "line"),
    [
        pytest.param("rules.yaml", 5, id="yaml: line of the weight"),
        pytest.param("rules.json", 7, id="json: line of the weight"),
        pytest.param("rules.toml", None, id="toml: no line"),
    ],
)
def test_schema_error_in_each_format(tmp_path: Path, name: str, line: int | None) -> None:
    path = write(tmp_path, name, WEIGHT_120[name.rsplit(".", 1)[1]])
    where = f"{path}:{line}" if line is not None else f"{path}"
    assert str(load_error(path)) == f"{where}: $.rules[0].split[0].weight: 120 is greater than the maximum of 100"


def test_tab_indented_json_keeps_line_numbers(tmp_path: Path) -> None:
    text = '{\n\t"clusters": {\n\t\t"stable": {},\n\t\t"canary": {"upstream": "ftp://10.0.0.8"}\n\t}\n}\n'
    path = write(tmp_path, "rules.json", text)
    assert str(load_error(path)) == (
        f"{path}:4: $.clusters.canary.upstream: 'ftp://10.0.0.8' does not match '^https?://'"
    )


# An unknown key is reported at the key itself (line, and column after the
# reason), not at its value or its mapping; graywsgi validate prints the same
# (tests/cli/test_commands.py).
UNKNOWN_KEYS = [
    pytest.param(
        "rules.yaml",
        "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    splt:\n      - {cluster: canary, weight: 20}\n",
        ("rules", 0),
        "splt",
        (4, 5),
        id="yaml: block value on the next line",
    ),
    pytest.param(
        "rules.yaml",
        "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    split:\n"
        "      - {cluster: canary, weight: 20, gruop: treatment}\n",
        ("rules", 0, "split", 0),
        "gruop",
        (5, 39),
        id="yaml: in a flow mapping",
    ),
    pytest.param(
        "rules.json",
        '{"clusters": {"stable": {}, "canary": {}},\n"rules": [{"name": "checkout", "splt": []}]}',
        ("rules", 0),
        "splt",
        (2, 32),
        id="json: two keys on one line",
    ),
    pytest.param(
        "rules.toml",
        'clusters = {stable = {}, canary = {}}\n\n[[rules]]\nname = "checkout"\n'
        'split = [{cluster = "canary", weight = 20, "gruop" = "treatment"}]\n',
        ("rules", 0, "split", 0),
        "gruop",
        (5, 44),
        id="toml: quoted key in an inline table",
    ),
    pytest.param(
        "rules.toml",
        'clusters = {stable = {}, canary = {}}\n\n[[rules]]\nname = "search"\n\n'
        '[[rules]]\nname = "checkout"\n\n[rules.match]\npath.prefx = "/checkout"\n',
        ("rules", 1, "match", "path"),
        "prefx",
        (10, 6),
        id="toml: dotted key under [rules.match] of the second rule",
    ),
]


@pytest.mark.parametrize(("name", "text", "location", "key", "position"), UNKNOWN_KEYS)
def test_unknown_key_is_reported_at_its_line_and_column(
    tmp_path: Path, name: str, text: str, location: tuple[str | int, ...], key: str, position: tuple[int, int]
) -> None:
    path = write(tmp_path, name, text)
    error = load_error(path)
    line, column = position
    reason = f"Additional properties are not allowed ({key!r} was unexpected) (column {column})"
    assert error.problems == [(line, location, reason)]
    assert str(error) == f"{path}:{line}: {json_path(location)}: {reason}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    mde: hash\n    splt: []\n",
            id="in mapping order",
        ),
        pytest.param(
            "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    splt: []\n    mde: hash\n",
            id="against mapping order",
        ),
    ],
)
def test_several_unknown_keys_are_reported_at_the_first_in_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "rules.yaml", text)
    assert str(load_error(path)) == (
        f"{path}:4: $.rules[0]: Additional properties are not allowed ('mde', 'splt' were unexpected) (column 5)"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "rules.yaml",
            "clusters: {stable: {}, canary: {}}\nrules:\n  - name: checkout\n    split:\n"
            "      cluster: canary\n      weight: 20\n",
            # The value (a mapping, not a list) starts on line 5, below its key.
            ":5: $.rules[0].split: {'cluster': 'canary', 'weight': 20} is not of type 'array'",
            id="yaml: block value below its key",
        ),
        pytest.param(
            "rules.json",
            '{\n  "clusters": {"stable": {}, "canary": {}},\n  "rules": [\n    {\n      "name": "checkout",\n'
            '      "split":\n        [{"cluster": "canary", "weight": "20"}]\n    }\n  ]\n}\n',
            ":7: $.rules[0].split[0].weight: '20' is not of type 'number'",
            id="json: value below its key",
        ),
    ],
)
def test_wrongly_typed_value_is_reported_at_the_value(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)
    assert str(load_error(path)) == f"{path}{expected}"


# --- 4. semantic errors (CompiledRules) ----------------------------------------

SEMANTIC_ERRORS = [
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canry, weight: 20}  # <--
        """,
        "$.rules[0].split[0].cluster",
        "unknown cluster 'canry' (clusters: canary, stable)",
        id="split names an unknown cluster",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        default_cluster: main  # <--
        """,
        "$.default_cluster",
        "unknown cluster 'main' (clusters: canary, stable)",
        id="default_cluster unknown",
    ),
    pytest.param(
        """
        # blue/green, but no default_cluster: the implied 'stable' does not exist
        clusters: {blue: {}, green: {}}  # <--
        """,
        "$.default_cluster",
        "unknown cluster 'stable' (clusters: blue, green)",
        id="implied default cluster stable missing",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}, beta: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: 60}  # <--
              - {cluster: beta, weight: 50}
        """,
        "$.rules[0].split",
        "weights add up to 110, more than 100",
        id="weights add up to more than 100",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: .nan}  # <--
        """,
        "$.rules[0].split[0].weight",
        "a weight must be from 0 to 100, got nan",
        id="weight NaN passes the schema, not the rules",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match: {path: {prefix: /checkout}}
          - name: search
            match: {path: {prefix: /search}}
          - name: checkout  # <--
            match: {path: {prefix: /cart}}
        """,
        "$.rules[2].name",
        "duplicate rule name 'checkout'",
        id="duplicate rule names",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: 10}
              - {cluster: canary, weight: 10}  # <--
        """,
        "$.rules[0].split[1].cluster",
        "cluster 'canary' appears twice in the split",
        id="same cluster twice in a split",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              host: [shop.example.com]
            factors:
              host: 0.9
              path: 0.5  # <--
            split: [{cluster: canary, weight: 20}]
        """,
        "$.rules[0].factors.path",
        "the rule does not match on path",
        id="factor for a dimension the rule does not match on",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              headers:
                - {name: X-Tier, regex: "gold("}  # <--
        """,
        "$.rules[0].match.headers[0].regex",
        "invalid regular expression 'gold(': missing ), unterminated subpattern",
        id="invalid regex in a header condition",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: checkout
            match:
              query:
                - {name: lang, exact: en}
                - {name: ab, regex: "[a-"}  # <--
        """,
        "$.rules[0].match.query[1].regex",
        "invalid regular expression '[a-': unterminated character set",
        id="invalid regex in a query condition",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: legacy
            match:
              path: {regex: "/v1/(.*"}  # <--
        """,
        "$.rules[0].match.path.regex",
        "invalid regular expression '/v1/(.*': missing ), unterminated subpattern",
        id="invalid path regex",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: gold
            match:
              when: 'header["X-Tier"] == '  # <--
        """,
        "$.rules[0].match.when",
        "expression 'header[\"X-Tier\"] == ': column 20: expected a value, found end of input",
        id="when expression cut short",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: gold
            match:
              when: tier == "gold"  # <--
        """,
        "$.rules[0].match.when",
        "unknown name 'tier'",
        id="when expression with an unknown name",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: v2
            match:
              api_version: ">=1.2.3.4"  # <--
        """,
        "$.rules[0].match.api_version",
        "invalid version range '>=1.2.3.4': invalid comparator '>=1.2.3.4'",
        id="invalid api_version range",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: v2
            versions:
              - {range: "2.0.0.0", cluster: canary}  # <--
        """,
        "$.rules[0].versions[0].range",
        "invalid version range '2.0.0.0'",
        id="invalid version route range",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: v2
            versions:
              - {exact: 2.0.0, cluster: canay}  # <--
        """,
        "$.rules[0].versions[0].cluster",
        "unknown cluster 'canay' (clusters: canary, stable)",
        id="version route to an unknown cluster",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: orders
            match:
              path: {template: "/a/x{id}"}  # <--
        """,
        "$.rules[0].match.path.template",
        "segment 'x{id}': a parameter must be a whole segment like {id}",
        id="template with a partial parameter segment",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        rules:
          - name: shop
            match:
              host: [shop.example.com, "shop..example.com"]  # <--
        """,
        "$.rules[0].match.host[1]",
        "not a host name or *.wildcard: 'shop..example.com'",
        id="host with an empty label",
    ),
    pytest.param(
        """
        clusters: {stable: {}, canary: {}}
        colors:
          canary: canary
          gold: premium  # <--
        """,
        "$.colors.gold",
        "names unknown cluster 'premium'",
        id="colors name an unknown cluster",
    ),
]


@pytest.mark.parametrize(("text", "where", "reason"), SEMANTIC_ERRORS)
def test_semantic_error_names_file_line_path_and_reason(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    text = dedent(text)
    path = write(tmp_path, "rules.yaml", text)
    error = load_error(path)
    message = str(error)
    assert message.startswith(f"{path}:{marked_line(text)}: {where}: "), message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        pytest.param(
            "rules.json",
            '{\n  "clusters": {"stable": {}, "canary": {}},\n  "rules": [\n'
            '    {"name": "checkout", "split": [{"cluster": "canry", "weight": 20}]}\n  ]\n}\n',
            4,
            id="json",
        ),
        pytest.param(
            "rules.toml",
            'clusters = {stable = {}, canary = {}}\n\n[[rules]]\nname = "checkout"\n'
            'split = [{cluster = "canry", weight = 20}]\n',
            None,
            id="toml",
        ),
    ],
)
def test_semantic_error_in_json_and_toml(tmp_path: Path, name: str, text: str, line: int | None) -> None:
    path = write(tmp_path, name, text)
    where = f"{path}:{line}" if line is not None else f"{path}"
    assert str(load_error(path)) == (
        f"{where}: $.rules[0].split[0].cluster: unknown cluster 'canry' (clusters: canary, stable)"
    )


def _regex_rules(count: int) -> str:
    lines = ["clusters: {stable: {}, canary: {}}", "rules:"]
    for i in range(count):
        lines += [f"  - name: r{i}", "    match:", f'      path: {{regex: "/r{i}/.*"}}']
    return "\n".join(lines) + "\n"


def test_max_regex_path_rules_is_allowed() -> None:
    compiled = parse_rules(_regex_rules(MAX_REGEX_PATH_RULES), filename="rules.yaml")
    assert len(compiled.ruleset.rules) == MAX_REGEX_PATH_RULES
    decision = compiled.decide_for(path="/r7/x", gray_id="u")
    assert decision is not None and decision.rule == "r7"


def test_more_than_max_regex_path_rules(tmp_path: Path) -> None:
    text = _regex_rules(MAX_REGEX_PATH_RULES + 1)
    path = write(tmp_path, "rules.yaml", text)
    last = f'path: {{regex: "/r{MAX_REGEX_PATH_RULES}/.*"}}'
    assert str(load_error(path)) == (
        f"{path}:{marked_line(text, last)}: $.rules[{MAX_REGEX_PATH_RULES}].match.path.regex: "
        f"more than {MAX_REGEX_PATH_RULES} regex path rules; use prefix or template paths"
    )


# --- 5. the published schema ---------------------------------------------------


def test_published_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_rules_schema_returns_the_published_schema() -> None:
    assert rules_schema() == json.loads(SCHEMA_FILE.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(rules_schema())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SHOP_DICT, id="shop rule set"),
        pytest.param({"clusters": {"stable": {}}}, id="smallest rule set"),
    ],
)
def test_schema_accepts_valid_rule_sets(data: dict[str, t.Any]) -> None:
    jsonschema.Draft202012Validator(rules_schema()).validate(data)


# --- 6. several errors in one file ---------------------------------------------


def test_all_schema_errors_are_reported_one_per_line(tmp_path: Path) -> None:
    text = dedent(
        """
        clusters:
          stable: {upstream: "ftp://10.0.0.7"}  # <-- a
        rules:
          - name: checkout
            split:
              - {cluster: canary, weight: 120}  # <-- b
            mode: random  # <-- c
          - name: search
            match:
              host: ["shop example.com"]  # <-- d
        """
    )
    path = write(tmp_path, "rules.yaml", text)
    error = load_error(path)
    assert str(error).splitlines() == [
        f"{path}:{marked_line(text, '# <-- a')}: $.clusters.stable.upstream: 'ftp://10.0.0.7' does not match '^https?://'",
        f"{path}:{marked_line(text, '# <-- b')}: $.rules[0].split[0].weight: 120 is greater than the maximum of 100",
        f"{path}:{marked_line(text, '# <-- c')}: $.rules[0].mode: 'random' is not one of ['hash', 'percent']",
        f"{path}:{marked_line(text, '# <-- d')}: $.rules[1].match.host[0]: 'shop example.com' does not match "
        r"'^(\\*\\.)?[A-Za-z0-9.-]+(:[0-9]+)?$'",
    ]
    assert len(error.problems) == 4


def _bad_modes(count: int) -> str:
    lines = ["clusters: {stable: {}}", "rules:"]
    for i in range(count):
        lines += [f"  - name: r{i}", f"    mode: bad{i}"]
    return "\n".join(lines) + "\n"


def _bad_mode_problem(i: int) -> tuple[int, tuple[str, int, str], str]:
    """The problem _bad_modes() gives for rule ``i`` (its "mode:" line is 4 + 2 * i)."""
    return (4 + 2 * i, ("rules", i, "mode"), f"'bad{i}' is not one of ['hash', 'percent']")


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(2, id="2 errors"),
        pytest.param(9, id="9 errors"),
        pytest.param(20, id="20 errors, no summary line"),
    ],
)
def test_up_to_20_errors_are_all_listed(tmp_path: Path, count: int) -> None:
    path = write(tmp_path, "rules.yaml", _bad_modes(count))
    error = load_error(path)
    assert error.problems == [_bad_mode_problem(i) for i in range(count)]
    assert str(error).splitlines() == [
        f"{path}:{4 + 2 * i}: $.rules[{i}].mode: 'bad{i}' is not one of ['hash', 'percent']" for i in range(count)
    ]


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(21, id="21 errors capped"),
        pytest.param(25, id="25 errors capped"),
        pytest.param(60, id="60 errors capped"),
    ],
)
def test_errors_are_capped_at_20_with_a_count_of_the_rest(tmp_path: Path, count: int) -> None:
    path = write(tmp_path, "rules.yaml", _bad_modes(count))
    error = load_error(path)
    # The first 20 in file order, then one line saying how many were left out.
    assert error.problems == [_bad_mode_problem(i) for i in range(20)] + [
        (None, (), f"... and {count - 20} more problems")
    ]
    assert str(error).splitlines() == [
        f"{path}:{4 + 2 * i}: $.rules[{i}].mode: 'bad{i}' is not one of ['hash', 'percent']" for i in range(20)
    ] + [f"{path}: $: ... and {count - 20} more problems"]


def test_few_errors_come_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", _bad_modes(9))
    error = load_error(path)
    assert [problem[1] for problem in error.problems] == [("rules", i, "mode") for i in range(9)]
    lines = [problem[0] for problem in error.problems]
    assert lines == [4 + 2 * i for i in range(9)]  # each rule's "mode:" line


def test_many_errors_come_in_file_order_and_the_cap_keeps_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", _bad_modes(25))
    error = load_error(path)
    assert [problem[1] for problem in error.problems] == [("rules", i, "mode") for i in range(20)] + [()]
    assert [problem[0] for problem in error.problems] == [4 + 2 * i for i in range(20)] + [None]
    assert error.problems[-1] == (None, (), "... and 5 more problems")


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        pytest.param(
            "rules.json",
            '{"clusters": {"stable": {}}, "rules": ['
            + ", ".join(f'{{"name": "r{i}", "mode": "bad{i}"}}' for i in range(12))
            + "]}",
            1,
            id="json on one line",
        ),
        pytest.param(
            "rules.toml",
            "clusters = {stable = {}}\n"
            + "".join(f'\n[[rules]]\nname = "r{i}"\nmode = "bad{i}"\n' for i in range(12)),
            None,
            id="toml without lines",
        ),
    ],
)
def test_errors_on_the_same_line_come_in_path_order_with_numeric_indexes(
    tmp_path: Path, name: str, text: str, line: int | None
) -> None:
    # rules[2] comes before rules[10]: indexes compare as numbers, not strings.
    path = write(tmp_path, name, text)
    error = load_error(path)
    assert error.problems == [
        (line, ("rules", i, "mode"), f"'bad{i}' is not one of ['hash', 'percent']") for i in range(12)
    ]
