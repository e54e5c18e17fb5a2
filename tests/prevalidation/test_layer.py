"""PreValidation per request (graywsgi/prevalidation/layer.py): violations, valid requests, failing open, threads, options."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from graywsgi import ConfigurationError, Extraction
from graywsgi.prevalidation.gray_rule_checks import GrayRule
from graywsgi.prevalidation.layer import MAX_LISTED_ERRORS, PreValidation
from tests.conftest import BufferedClient
from tests.prevalidation.helpers import DATA, GRAY, ORDERS, EchoApp, client_for, triples

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


PAYMENTS = DATA / "payments-3.0.json"

CANARY = {"X-Traffic-Color": "canary"}
PAY_GRAY = {"X-Version": "1.5.0", "Idempotency-Key": "0b6f3c2e-41d8-4f3b-9a51-0c6e2b7d8e10"}


@pytest.fixture(scope="module")
def payments() -> PreValidation:
    return PreValidation(EchoApp(), openapi=PAYMENTS)


# --- violations ----------------------------------------------------------------------


VIOLATIONS = [
    pytest.param("GET", "/orders?limit=500", {}, [("query.limit", "maximum: 50", "500")], id="query above maximum"),
    pytest.param("GET", "/orders?limit=0", {}, [("query.limit", "minimum: 1", "0")], id="query below minimum"),
    pytest.param("GET", "/orders?limit=5x", {}, [("query.limit", "type: integer", "5x")], id="query not an integer"),
    pytest.param("GET", "/orders?limit=%zz", {}, [("query.limit", "percent-encoded text", None)], id="query malformed escape"),
    pytest.param("GET", "/orders?status=%FF", {}, [("query.status", "type: UTF-8 text", "\ufffd")], id="query not UTF-8"),
    pytest.param(
        "GET", "/orders?status=shipped", {}, [("query.status", 'enum: ["open","paid"]', "shipped")], id="query enum (versions ^2)"
    ),
    pytest.param("GET", "/orders?tag=ok&tag=NO", {}, [("query.tag[1]", 'pattern: "^[a-z]+$"', "NO")], id="query array item pattern"),
    pytest.param(
        "GET", "/orders?tag=a&tag=b&tag=c&tag=d", {}, [("query.tag", "maxItems: 3", '["a", "b", "c", "d"]')], id="query array too long"
    ),
    pytest.param("GET", "/orders/abc", {}, [("path.order_id", "type: integer", "abc")], id="path not an integer"),
    pytest.param("GET", "/orders/0", {}, [("path.order_id", "minimum: 1", "0")], id="path below minimum"),
    pytest.param("GET", "/orders/export.xml", {}, [("path.format", 'enum: ["csv","json"]', "xml")], id="path in a partial segment"),
    pytest.param(
        "PATCH", "/orders/7", {"headers": {"If-Match": "W/x"}}, [("header.if-match", 'pattern: "^\\"[0-9a-f]+\\"$"', "W/x")],
        id="header pattern",
    ),
    pytest.param(
        "POST", "/orders", {"json": {"customer": {"email": "nope"}, "items": [{"sku": "ABC-1234", "qty": 1}]}},
        [("body#/customer/email", 'format: "email"', "nope")], id="json format email",
    ),
    pytest.param(
        "POST", "/orders", {"json": {"customer": {"email": "a@b.io"}, "items": [{"qty": 1}, {"qty": 50}]}},
        [("body#/items/1/qty", "maximum: 10", "50")], id="json nested array item",
    ),
    pytest.param(
        "POST", "/orders", {"json": {"customer": {"email": "a@b.io"}, "items": []}},
        [("body#/items", "minItems: 1", "[]")], id="json array too short",
    ),
    pytest.param(
        "POST", "/orders", {"json": {"customer": {}, "items": [{"qty": 1}]}},
        [("body#/customer/email", "present", None)], id="json required field absent",
    ),
    pytest.param(
        "POST", "/orders", {"json": {"customer": "a@b.io", "items": [{"qty": 1}]}},
        [("body#/customer/email", "present", None)], id="json pointer through a string",
    ),
    pytest.param(
        "PATCH", "/orders/7", {"json": {"shipping": {"address": {"country": "US"}}}},
        [("body#/shipping/address/country", 'enum: ["DE","FR","NL"]', "US")], id="json through a sibling-file $ref",
    ),
    pytest.param(
        "PATCH", "/orders/7", {"data": {"priority": "high"}}, [("body#/priority", "type: integer", "high")], id="form not an integer",
    ),
    pytest.param(
        "PATCH", "/orders/7", {"data": {"note": "n" * 141, "priority": "6"}},
        [("body#/note", "maxLength: 140", "n" * 117 + "..."), ("body#/priority", "maximum: 5", "6")], id="form two fields",
    ),
    pytest.param(
        "PUT", "/orders/7/items/3", {"data": {"sku": "QQQ-0001", "qty": "11", "photo": (io.BytesIO(b"\xff\xd8"), "p.jpg")}},
        [("body#/sku", 'pattern: "^(ABC|XYZ)-"', "QQQ-0001"), ("body#/qty", "maximum: 10", "11")], id="multipart text fields",
    ),
    pytest.param(
        "PUT", "/orders/7/items/101", {"json": {"sku": "ABC-0001", "qty": 1}},
        [("path.item_id", "maximum: 100", "101")], id="path in a two-parameter template",
    ),
]


@pytest.mark.parametrize("method, url, kwargs, expected", VIOLATIONS)
def test_a_violation_is_a_400_listing_each_field(
    orders: PreValidation, method: str, url: str, kwargs: dict[str, t.Any], expected: list[tuple[str, str, str | None]]
) -> None:
    client, app = client_for(orders)
    response = client.open(url, method=method, headers={**GRAY, **kwargs.pop("headers", {})}, **kwargs)
    assert triples(response) == expected
    problem = response.json
    assert problem["operation"].split()[0] == method
    assert problem["detail"].startswith(f"{len(expected)} field")
    assert app.calls == 0, "a refused request reached the application"


PAYMENT_VIOLATIONS = [
    pytest.param(
        "/payments", {"headers": {"Idempotency-Key": "k-1"}, "json": {"amount": 1, "currency": "EUR"}},
        [("header.Idempotency-Key", 'format: "uuid"', "k-1")], id="3.0 header format uuid",
    ),
    pytest.param(
        "/payments?dry_run=true", {"json": {"amount": 1, "currency": "EUR"}},
        [("query.dry_run", "const: false", "true")], id="3.0 boolean query",
    ),
    pytest.param(
        "/payments?dry_run=yes", {"json": {"amount": 1, "currency": "EUR"}},
        [("query.dry_run", "type: boolean (true or false)", "yes")], id="3.0 boolean query not a boolean",
    ),
    pytest.param(
        "/payments", {"json": {"amount": 0, "currency": "GBP"}},
        [("body#/amount", "exclusiveMinimum: 0", "0"), ("body#/currency", 'enum: ["EUR","USD"]', "GBP")], id="3.0 json two fields",
    ),
    pytest.param(
        "/payments", {"data": {"amount": "-1", "currency": "EUR"}}, [("body#/amount", "exclusiveMinimum: 0", "-1")],
        id="3.0 form number",
    ),
    pytest.param(
        "/payments", {"json": {"amount": 1, "currency": "EUR", "billing": {"country": "de"}}},
        [("body#/billing/country", 'pattern: "^[A-Z]{2}$"', "de")], id="3.0 sibling-file schema field",
    ),
    pytest.param(
        "/payments/not-a-uuid/refunds", {"json": {"amount": 1}}, [("path.payment_id", 'format: "uuid"', "not-a-uuid")],
        id="3.0 path format",
    ),
    pytest.param(
        "/payments/0b6f3c2e-41d8-4f3b-9a51-0c6e2b7d8e10/refunds", {"json": {"reason": "x"}},
        [("body", 'required: ["amount"]', '{"reason":"x"}')], id="3.0 whole-body rule",
    ),
    pytest.param(
        "/payments/0b6f3c2e-41d8-4f3b-9a51-0c6e2b7d8e10/refunds", {"json": {"amount": 2, "reason": 7}},
        [("body#/reason", 'type: ["string","null"]', "7")], id="3.0 type list",
    ),
]


@pytest.mark.parametrize("url, kwargs, expected", PAYMENT_VIOLATIONS)
def test_openapi_30_json_document(
    payments: PreValidation, url: str, kwargs: dict[str, t.Any], expected: list[tuple[str, str, str | None]]
) -> None:
    client, app = client_for(payments)
    response = client.post(url, headers={**PAY_GRAY, **kwargs.pop("headers", {})}, **kwargs)
    assert triples(response) == expected
    assert app.calls == 0


VALID = [
    pytest.param("GET", "/orders?limit=50&status=open&tag=a&tag=b", {"headers": {"X-Client": "ios", **CANARY}}, id="query and header"),
    pytest.param("GET", "/orders/12", {}, id="path"),
    pytest.param("GET", "/orders/export.csv", {}, id="partial segment"),
    pytest.param("GET", "/orders/12/items", {}, id="operation without rules"),
    pytest.param("GET", "/health", {}, id="another operation without rules"),
    pytest.param("GET", "/nowhere", {}, id="no operation"),
    pytest.param("HEAD", "/orders?limit=500", {}, id="method without an operation"),
    pytest.param(
        "POST", "/orders", {"json": {"customer": {"email": "a@b.io"}, "items": [{"sku": "ABC-1", "qty": 10}]}}, id="json body"
    ),
    pytest.param("PATCH", "/orders/7", {"data": {"note": "leave at the door", "priority": "5"}, "headers": {"If-Match": '"ab12"'}}, id="form body"),
    pytest.param("PATCH", "/orders/7", {}, id="no body, no required body field"),
    pytest.param("DELETE", "/orders/7", {}, id="delete has no rules"),
]


@pytest.mark.parametrize("method, url, kwargs", VALID)
def test_a_valid_gray_request_is_served(orders: PreValidation, method: str, url: str, kwargs: dict[str, t.Any]) -> None:
    client, app = client_for(orders)
    response = client.open(url, method=method, headers={**GRAY, **kwargs.pop("headers", {})}, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert app.calls == 1


def test_every_failed_field_is_listed_and_the_list_is_capped(tmp_path: Path) -> None:
    rules = [{"field": f"query.p{i}", "schema": {"type": "integer"}} for i in range(25)]
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {
                "get": {
                    "parameters": [{"name": f"p{i}", "in": "query", "schema": {"type": "string"}} for i in range(25)],
                    "responses": {"200": {"description": "ok"}},
                    "x-gray-rules": {"rules": rules},
                }
            }
        },
    }
    path = tmp_path / "many.json"
    path.write_text(json.dumps(spec))
    client, _app = client_for(PreValidation(EchoApp(), openapi=path))
    query = "&".join(f"p{i}=x" for i in range(25))
    problem = client.get(f"/x?{query}", headers=GRAY).json
    assert len(problem["errors"]) == MAX_LISTED_ERRORS
    assert problem["errors_omitted"] == 25 - MAX_LISTED_ERRORS
    assert problem["detail"] == "25 fields of this request break the gray rules of GET /x."


# --- paths and context -------------------------------------------------------------


def test_base_path() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, base_path="/api/v2")
    client, _app = client_for(middleware)
    assert client.get("/api/v2/orders?limit=500", headers=GRAY).status_code == 400
    assert client.get("/api/v2x/orders?limit=500", headers=GRAY).status_code == 200
    assert client.get("/orders?limit=500", headers=GRAY).status_code == 200


def test_non_ascii_path_parameters_are_utf8() -> None:
    client, _app = client_for(PreValidation(EchoApp(), openapi=ORDERS))
    response = client.get("/orders/export.%C3%A9", headers=GRAY)
    assert triples(response) == [("path.format", 'enum: ["csv","json"]', "é")]


def test_without_extraction_it_binds_a_context_itself() -> None:
    app = EchoApp()
    client = BufferedClient(PreValidation(app, openapi=ORDERS))
    assert client.get("/orders?limit=500", headers=GRAY).status_code == 400
    assert client.get("/orders?limit=5", headers=GRAY).status_code == 200
    assert app.calls == 1


def test_the_operation_is_recorded_for_the_layers_below(orders: PreValidation) -> None:
    client, app = client_for(orders)
    client.get("/orders/12", headers=GRAY)
    assert app.environs[-1]["graywsgi.operation"] == "GET /orders/{order_id}"


# --- failing open ------------------------------------------------------------------


def test_an_internal_error_is_logged_and_the_request_served(
    orders: PreValidation, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client, app = client_for(orders)

    def explode(self: GrayRule, *args: t.Any) -> None:
        raise RuntimeError("validator bug")

    monkeypatch.setattr(GrayRule, "check_json", explode)
    body = json.dumps({"customer": {"email": "nope"}, "items": [{"qty": 99}]}).encode()
    with caplog.at_level(logging.ERROR, logger="graywsgi.prevalidation"):
        response = client.post("/orders", data=body, content_type="application/json", headers=GRAY)
    assert response.status_code == 200
    assert app.bodies == [body], "the body read before the failure was not handed on"
    assert response.json["content_length"] == str(len(body))
    (record,) = caplog.records
    assert "serving the request unvalidated" in record.getMessage()
    assert record.exc_info is not None


def test_an_error_in_the_application_is_not_swallowed(orders: PreValidation) -> None:
    def failing(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        raise KeyError("app bug")

    orders.app = failing
    with pytest.raises(KeyError):
        BufferedClient(Extraction(orders)).get("/orders?limit=5", headers=GRAY)


# --- threads -----------------------------------------------------------------------


def test_many_threads_share_the_validators(orders: PreValidation) -> None:
    app = EchoApp()
    orders.app = app
    client = BufferedClient(Extraction(orders))
    threads, per_thread = 16, 60

    def worker(n: int) -> tuple[int, int]:
        served = refused = 0
        for i in range(per_thread):
            qty = (n * per_thread + i) % 20 + 1  # 1..20: above 10 is refused
            body = {"customer": {"email": f"u{n}-{i}@shop.io"}, "items": [{"qty": qty}], "pad": "x" * (n * 97 + i)}
            response = client.post("/orders", json=body, headers={"X-Version": f"2.{n}.{i}"})
            if qty > 10:
                assert response.status_code == 400
                assert response.json["errors"] == [
                    {"where": "body#/items/0/qty", "expected": "maximum: 10", "received": str(qty),
                     "message": f"{qty} is greater than the maximum of 10"}
                ]
                refused += 1
            else:
                assert response.status_code == 200
                assert response.json["sha256"] == hashlib.sha256(json.dumps(body).encode()).hexdigest()
                served += 1
        return served, refused

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(worker, range(threads)))
    served = sum(s for s, _ in results)
    refused = sum(r for _, r in results)
    expected_served = sum(1 for k in range(threads * per_thread) if k % 20 + 1 <= 10)
    assert served == expected_served == app.calls
    assert refused == threads * per_thread - expected_served
    assert sorted(app.bodies) == sorted(
        json.dumps({"customer": {"email": f"u{n}-{i}@shop.io"}, "items": [{"qty": (n * per_thread + i) % 20 + 1}],
                    "pad": "x" * (n * 97 + i)}).encode()
        for n in range(threads) for i in range(per_thread) if (n * per_thread + i) % 20 + 1 <= 10
    )


def test_no_per_request_state_on_the_instance(orders: PreValidation) -> None:
    before = dict(vars(orders))
    client, _app = client_for(orders)
    client.post("/orders", json={"customer": {"email": "x"}, "items": []}, headers=GRAY)
    client.get("/orders?limit=9", headers=GRAY)
    after = dict(vars(orders))
    after.pop("app"), before.pop("app")
    assert after == before


# --- options -----------------------------------------------------------------------


BAD_OPTIONS = [
    pytest.param({"max_body": 0}, "max_body must be a positive int", id="max_body 0"),
    pytest.param({"max_body": True}, "max_body must be a positive int", id="max_body bool"),
    pytest.param({"max_body": "1MB"}, "max_body must be a positive int", id="max_body text"),
    pytest.param({"applies_to": "canary"}, "applies_to must be 'gray', 'all' or a mapping", id="applies_to unknown word"),
    pytest.param({"applies_to": {}}, "at least one of versions, routes, colors", id="applies_to empty"),
    pytest.param({"applies_to": {"version": ["1"]}}, "unknown keys ['version']", id="applies_to typo"),
    pytest.param({"applies_to": {"versions": "^2"}}, "must be a list of non-empty strings", id="applies_to string not list"),
    pytest.param({"applies_to": {"versions": ["^^2"]}}, "is not a version or range", id="applies_to bad range"),
    pytest.param({"stable": "stable"}, "stable must be a collection of names", id="stable as a string"),
    pytest.param({"base_path": "api"}, "base_path must be", id="base_path without slash"),
    pytest.param({"base_path": "/api/"}, "base_path must be", id="base_path trailing slash"),
    pytest.param({"openapi": 42}, "openapi must be a file path", id="openapi not a path"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options_raise_configuration_error(options: dict[str, t.Any], message: str) -> None:
    kwargs: dict[str, t.Any] = {"openapi": ORDERS, **options}
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]").replace("^", r"\^")):
        PreValidation(EchoApp(), **kwargs)
