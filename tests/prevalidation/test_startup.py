"""PreValidation at start-up, end to end: every failure of the document and its x-gray-rules names where it is."""

from __future__ import annotations

import copy
import shutil
import typing as t
from pathlib import Path

import pytest
import yaml

from graywsgi import ConfigurationError
from graywsgi.prevalidation.gray_rule_checks import FORMAT_CHECKER
from graywsgi.prevalidation.layer import PreValidation
from graywsgi.prevalidation.openapi_model import OpenAPIError
from tests.prevalidation.helpers import DATA, app

pytestmark = pytest.mark.usefixtures("no_network")


ORDERS = yaml.safe_load((DATA / "orders-3.1.yaml").read_text("utf-8"))

Mutation = t.Callable[[dict[str, t.Any]], object]


def write_mutated(tmp_path: Path, mutate: Mutation) -> Path:
    shutil.copy(DATA / "common.yaml", tmp_path / "common.yaml")
    document = copy.deepcopy(ORDERS)
    mutate(document)
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def get_rules(d: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    rules: list[dict[str, t.Any]] = d["paths"]["/orders"]["get"]["x-gray-rules"]["rules"]
    return rules


def post_rules(d: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    rules: list[dict[str, t.Any]] = d["paths"]["/orders"]["post"]["x-gray-rules"]["rules"]
    return rules


def patch_op(d: dict[str, t.Any]) -> dict[str, t.Any]:
    operation: dict[str, t.Any] = d["paths"]["/orders/{order_id}"]["patch"]
    return operation


GET_RULES = "#/paths/~1orders/get/x-gray-rules"
POST_RULES = "#/paths/~1orders/post/x-gray-rules"

FAILURES = [
    # -- rules naming fields the operation does not define
    pytest.param(
        lambda d: get_rules(d)[0].update(field="query.limt"), "GET /orders", f"{GET_RULES}/rules/0/field",
        "query parameter 'limt' is not defined by the operation (defined: limit, status, tag)", id="unknown query parameter",
    ),
    pytest.param(
        lambda d: get_rules(d)[3].update(field="header.X-Device"), "GET /orders", f"{GET_RULES}/rules/3/field",
        "header parameter 'X-Device' is not defined by the operation (defined: X-Client)", id="unknown header",
    ),
    pytest.param(
        lambda d: get_rules(d)[0].update(field="header.limit"), "GET /orders", f"{GET_RULES}/rules/0/field",
        "header parameter 'limit' is not defined", id="a query parameter named as a header",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders/{order_id}"]["get"]["x-gray-rules"]["rules"][0].update(field="path.id"),
        "GET /orders/{order_id}", "#/paths/~1orders~1{order_id}/get/x-gray-rules/rules/0/field",
        "path parameter 'id' is not defined by the operation (defined: order_id)", id="unknown path parameter",
    ),
    pytest.param(
        lambda d: post_rules(d)[0].update(field="body#/customer/mail"), "POST /orders", f"{POST_RULES}/rules/0/field",
        "the request body schema does not define /customer/mail (media types: application/json, application/x-www-form-urlencoded)",
        id="unknown body property",
    ),
    pytest.param(
        lambda d: post_rules(d)[1].update(field="body#/items/0/colour"), "POST /orders", f"{POST_RULES}/rules/1/field",
        "does not define /items/0/colour", id="unknown property behind a sibling-file $ref",
    ),
    pytest.param(
        lambda d: get_rules(d).append({"field": "body#/x", "schema": {}}), "GET /orders", f"{GET_RULES}/rules/4/field",
        "the operation has no request body", id="body rule without a request body",
    ),
    pytest.param(
        lambda d: d["components"]["requestBodies"]["NewOrder"].update(content={"text/plain": {"schema": {"type": "string"}}}),
        "POST /orders", f"{POST_RULES}/rules/0/field",
        "the operation's request body has no JSON or form media type (it has: text/plain)", id="body rule on a text body",
    ),
    pytest.param(
        lambda d: patch_op(d)["requestBody"]["content"].pop("application/json"), "PATCH /orders/{order_id}",
        "#/paths/~1orders~1{order_id}/patch/x-gray-rules/rules/4/field",
        "does not define /shipping/address/country (media types: application/x-www-form-urlencoded)",
        id="nested pointer into a form body",
    ),
    # -- the published schema of x-gray-rules
    pytest.param(
        lambda d: get_rules(d)[0].update(field="cookie.session"), "GET /orders", f"{GET_RULES}/rules/0/field",
        "x-gray-rules: 'cookie.session' does not match", id="unknown field kind",
    ),
    pytest.param(
        lambda d: get_rules(d)[0].pop("schema"), "GET /orders", f"{GET_RULES}/rules/0",
        "x-gray-rules: 'schema' is a required property", id="rule without a schema",
    ),
    pytest.param(
        lambda d: get_rules(d)[0].update(requird=True), "GET /orders", f"{GET_RULES}/rules/0",
        "('requird' was unexpected)", id="misspelt rule key",
    ),
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update(maximun=5), "GET /orders", f"{GET_RULES}/rules/0/schema",
        "('maximun' was unexpected)", id="misspelt constraint keyword",
    ),
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update(type="integr"), "GET /orders", f"{GET_RULES}/rules/0/schema/type",
        "'integr' is not one of", id="unknown type",
    ),
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update({"$ref": "#/components/schemas/Sku"}), "GET /orders",
        f"{GET_RULES}/rules/0/schema", "('$ref' was unexpected)", id="$ref inside a constraint",
    ),
    pytest.param(
        lambda d: get_rules(d)[1].update(applies_to="canary"), "GET /orders", f"{GET_RULES}/rules/1/applies_to",
        "x-gray-rules: 'canary' is not one of ['gray', 'all']", id="applies_to unknown word",
    ),
    pytest.param(
        lambda d: get_rules(d)[1].update(applies_to={}), "GET /orders", f"{GET_RULES}/rules/1/applies_to",
        "should be non-empty", id="applies_to empty",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"]["x-gray-rules"].update(rules=[]), "GET /orders", f"{GET_RULES}/rules",
        "[] should be non-empty", id="no rules",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"].update({"x-gray-rules": [{"field": "query.limit"}]}), "GET /orders", GET_RULES,
        "is not of type 'object'", id="x-gray-rules is a list",
    ),
    # -- what the published schema cannot check
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update(pattern="[a-"), "GET /orders", f"{GET_RULES}/rules/0/schema",
        "pattern '[a-' does not compile", id="pattern that does not compile",
    ),
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update(format="emial"), "GET /orders", f"{GET_RULES}/rules/0/schema",
        "format 'emial' cannot be checked here (checkable: date, date-time, email", id="format that cannot be checked",
    ),
    pytest.param(
        lambda d: get_rules(d)[0]["schema"].update(items={"maxLength": -1}), "GET /orders", f"{GET_RULES}/rules/0/schema/items/maxLength",
        "-1 is less than the minimum of 0", id="negative length",
    ),
    pytest.param(
        lambda d: get_rules(d)[1].update(applies_to={"versions": ["^^2"]}), "GET /orders", f"{GET_RULES}/rules/1/applies_to",
        "applies_to.versions: '^^2' is not a version or range", id="version range that does not parse",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"]["x-gray-rules"].update(applies_to={"versions": ["1.x.2.3"]}), "GET /orders",
        f"{GET_RULES}/applies_to", "is not a version or range", id="operation-level applies_to",
    ),
    pytest.param(
        lambda d: d["paths"]["/health"].update({"x-gray-rules": {"rules": [{"field": "query.q", "schema": {}}]}}),
        "(document)", "#/paths/~1health", "x-gray-rules belongs on an operation (get, post, ...), not on the path item",
        id="x-gray-rules on a path item",
    ),
    # -- the document itself (openapi-spec-validator)
    pytest.param(lambda d: d.pop("info"), "(document)", "#", "openapi-spec-validator: 'info' is a required property", id="no info"),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"]["parameters"][1]["schema"].update(type="strin"), "GET /orders",
        "#/paths/~1orders/get/parameters/1/schema/type", "openapi-spec-validator: 'strin' is not valid", id="bad parameter schema",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders/{order_id}"].pop("parameters"), "GET /orders/{order_id}", "#/paths/~1orders~1{order_id}/get",
        "Path parameter 'order_id' for 'get' operation in '/orders/{order_id}' was not resolved", id="undeclared path parameter",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"].update(operationId="getOrder"), "GET /orders/{order_id}",
        "#/paths/~1orders~1{order_id}/get", "Operation ID 'getOrder'", id="duplicate operationId",
    ),
    pytest.param(lambda d: d.update(openapi="3.2.0"), "(document)", "#/openapi", "found '3.2.0'", id="OpenAPI 3.2"),
    pytest.param(
        lambda d: (d.pop("openapi"), d.update(swagger="2.0")), "(document)", "#", "graywsgi reads OpenAPI 3.0 and 3.1 documents; found Swagger '2.0'",
        id="Swagger 2.0",
    ),
    # -- references
    pytest.param(
        lambda d: d["components"]["schemas"]["NewOrder"]["properties"].update(x={"$ref": "https://schemas.example.com/x.yaml"}),
        "(document)", "#/components/schemas/NewOrder/properties/x/$ref",
        "$ref 'https://schemas.example.com/x.yaml' is a network URL; graywsgi fetches nothing from the network", id="https $ref",
    ),
    pytest.param(
        lambda d: d["paths"]["/orders"]["get"]["parameters"].append({"$ref": "http://example.com/p.yaml#/Limit"}),
        "GET /orders", "#/paths/~1orders/get/parameters/4/$ref", "is a network URL", id="http $ref in an operation",
    ),
    pytest.param(
        lambda d: d["components"]["schemas"].update(U={"$ref": "urn:example:order"}), "(document)", "#/components/schemas/U/$ref",
        "is a urn: URI", id="urn $ref",
    ),
    pytest.param(
        lambda d: d["components"]["schemas"].update(F={"$ref": "missing.yaml#/A"}), "(document)", "#/components/schemas/F/$ref",
        "missing.yaml: cannot read the file: No such file or directory", id="$ref to a missing file",
    ),
    pytest.param(
        lambda d: d["components"]["schemas"].update(P={"$ref": "common.yaml#/components/schemas/Nope"}), "(document)",
        "#/components/schemas/P/$ref", "points at nothing (#/components/schemas/Nope is not in", id="$ref to nothing in a sibling",
    ),
    pytest.param(
        lambda d: d["components"]["schemas"].update(L={"$ref": "#/components/schemas/Nope"}), "(document)",
        "#/components/schemas/L/$ref", "points at nothing", id="local $ref to nothing",
    ),
    pytest.param(
        lambda d: d["components"]["schemas"].update(I={"$id": "https://example.com/i.json", "type": "string"}), "(document)",
        "#/components/schemas/I/$id", "is a network URL", id="network $id",
    ),
]


@pytest.mark.parametrize("mutate, operation, pointer, reason", FAILURES)
def test_start_up_fails_naming_document_operation_and_pointer(
    tmp_path: Path, mutate: Mutation, operation: str, pointer: str, reason: str
) -> None:
    path = write_mutated(tmp_path, mutate)
    with pytest.raises(OpenAPIError) as caught:
        PreValidation(app, openapi=path)
    error = caught.value
    assert isinstance(error, ConfigurationError)
    lines = str(error).splitlines()
    matching = [line for line in lines if f": {operation}: {pointer}: " in line and reason in line]
    assert matching, "\n".join(lines)
    assert matching[0].startswith(f"{path}:")
    assert matching[0].split(":")[1].isdigit(), "no line number"


def test_line_numbers_point_at_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(
        """openapi: 3.0.3
info: {title: Shop, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: page, in: query, schema: {type: integer}}
      responses:
        "200": {description: ok}
      x-gray-rules:
        rules:
          - field: query.page
            schema: {minimum: 1}
          - field: query.size
            schema: {maximum: 100}
          - field: query.page
            schema: {format: int33}
""",
        "utf-8",
    )
    with pytest.raises(OpenAPIError) as caught:
        PreValidation(app, openapi=path)
    assert str(caught.value).splitlines() == [
        f"{path}:14: GET /items: #/paths/~1items/get/x-gray-rules/rules/1/field: "
        "query parameter 'size' is not defined by the operation (defined: page)",
        f"{path}:17: GET /items: #/paths/~1items/get/x-gray-rules/rules/2/schema: format 'int33' cannot be checked here "
        f"(checkable: {', '.join(sorted(FORMAT_CHECKER.checkers))})",
    ]
    assert {"date", "date-time", "email", "int32", "int64", "ipv4", "uuid"} <= set(FORMAT_CHECKER.checkers)
    assert [p.line for p in caught.value.problems] == [14, 17]


def test_an_error_in_a_sibling_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        'openapi: 3.1.0\ninfo: {title: t, version: "1"}\npaths:\n  /items:\n    $ref: "paths/items.yaml#/Items"\n', "utf-8"
    )
    (tmp_path / "paths").mkdir()
    (tmp_path / "paths" / "items.yaml").write_text(
        "Items:\n  get:\n    responses:\n      '200': {description: ok}\n    x-gray-rules:\n      rules:\n"
        "        - {field: query.q, schema: {}}\n",
        "utf-8",
    )
    with pytest.raises(OpenAPIError) as caught:
        PreValidation(app, openapi=tmp_path / "main.yaml")
    (line,) = str(caught.value).splitlines()
    assert line == (
        f"{tmp_path / 'paths' / 'items.yaml'}:7: GET /items: #/Items/get/x-gray-rules/rules/0/field: "
        "query parameter 'q' is not defined by the operation (defined: none)"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def several(d: dict[str, t.Any]) -> None:
        get_rules(d)[0].update(field="query.a")
        get_rules(d)[2].update(field="query.b")
        post_rules(d)[0].update(field="body#/c")

    with pytest.raises(OpenAPIError) as caught:
        PreValidation(app, openapi=write_mutated(tmp_path, several))
    assert [(p.operation, p.location[-2]) for p in caught.value.problems] == [
        ("GET /orders", 0), ("GET /orders", 2), ("POST /orders", 0)
    ]
