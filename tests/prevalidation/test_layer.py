"""PreValidation per request: violations, selection, the body, failing open, threads."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import threading
import tracemalloc
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from graywsgi import CanarySplit, ConfigurationError, Extraction, get_current
from graywsgi.prevalidation.gray_rules import GrayRule
from graywsgi.prevalidation.layer import DEFAULT_MAX_BODY, MAX_LISTED_ERRORS, PreValidation
from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"
ORDERS = DATA / "orders-3.1.yaml"
PAYMENTS = DATA / "payments-3.0.json"

GRAY = {"X-Version": "2.1.0"}  # a gray request (and inside the ^2 range)
CANARY = {"X-Traffic-Color": "canary"}
PAY_GRAY = {"X-Version": "1.5.0", "Idempotency-Key": "0b6f3c2e-41d8-4f3b-9a51-0c6e2b7d8e10"}


class EchoApp:
    """Answers with what it received: the body's length and hash, CONTENT_LENGTH."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []
        self.environs: list[WSGIEnvironment] = []
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        assert get_current() is not None
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = b""
        with self.lock:
            self.calls += 1
            self.bodies.append(body)
            self.environs.append(environ)
        answer = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "content_length": length}
        return Response(json.dumps(answer), content_type="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def orders() -> PreValidation:
    return PreValidation(EchoApp(), openapi=ORDERS)


@pytest.fixture(scope="module")
def payments() -> PreValidation:
    return PreValidation(EchoApp(), openapi=PAYMENTS)


def client_for(middleware: PreValidation, app: EchoApp | None = None) -> tuple[BufferedClient, EchoApp]:
    echo = app or EchoApp()
    middleware.app = echo
    return BufferedClient(Extraction(middleware)), echo


class Answer(t.NamedTuple):
    status_code: int
    headers: t.Any
    data: bytes

    @property
    def json(self) -> t.Any:
        return json.loads(self.data)


def call(middleware: PreValidation, environ: WSGIEnvironment) -> Answer:
    """Run the chain on an environ exactly as given (the test client would rebuild it)."""
    app_iter, status, headers = run_wsgi_app(Extraction(middleware), environ, buffered=False)
    try:
        data = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return Answer(int(status.split()[0]), headers, data)


def triples(response: t.Any) -> list[tuple[str, str, str | None]]:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    return [(e["where"], e["expected"], e["received"]) for e in problem["errors"]]


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


def test_received_values_are_capped(orders: PreValidation) -> None:
    client, _app = client_for(orders)
    huge = "x" * 10_000
    problem = client.post("/orders", json={"customer": {"email": huge}, "items": [{"qty": 1}]}, headers=GRAY).json
    (error,) = problem["errors"]
    assert len(error["received"]) == 120 and error["received"].endswith("...")
    assert len(error["message"]) <= 120
    assert len(json.dumps(problem)) < 1000


# --- which requests are checked ----------------------------------------------------


SELECTION = [
    pytest.param({}, 200, id="no gray marker: untouched"),
    pytest.param({"X-Gray-ID": "user-1"}, 200, id="a gray id alone is not gray"),
    pytest.param({"X-Traffic-Color": "stable"}, 200, id="the stable colour is not gray"),
    pytest.param({"X-Traffic-Color": "Canary"}, 400, id="a colour is gray"),
    pytest.param({"X-Version": "1.0.0"}, 400, id="a version is gray"),
    pytest.param({"X-Canary-ID": "c-1"}, 400, id="a canary id is gray"),
    pytest.param({"X-Version": "1.0.0", "X-Env": "\x01", "X-Canary-ID": "\x02"}, 200, id="fallback context is not gray"),
]


@pytest.mark.parametrize("headers, status", SELECTION)
def test_only_gray_requests_are_checked(orders: PreValidation, headers: dict[str, str], status: int) -> None:
    client, app = client_for(orders)
    response = client.get("/orders?limit=500", headers=headers)
    assert response.status_code == status
    assert app.calls == (1 if status == 200 else 0)


RULE_SELECTORS = [
    pytest.param({"X-Version": "2.0.0"}, ["query.status"], id="versions ^2 selects 2.0.0"),
    pytest.param({"X-Version": "v2.5.1-rc.1"}, [], id="^2 excludes a prerelease"),
    pytest.param({"X-Version": "1.9.9"}, [], id="versions ^2 excludes 1.9.9"),
    pytest.param({"X-Version": "banana"}, [], id="a version that is not SemVer matches no range"),
    pytest.param({"X-Traffic-Color": "CANARY"}, ["header.X-Client"], id="colors canary, case-insensitive"),
    pytest.param({"X-Traffic-Color": "blue"}, [], id="another colour: only gray rules"),
]


@pytest.mark.parametrize("headers, expected", RULE_SELECTORS)
def test_each_rule_applies_to_the_requests_it_names(
    orders: PreValidation, headers: dict[str, str], expected: list[str]
) -> None:
    client, _app = client_for(orders)
    response = client.get("/orders?status=shipped&limit=1", headers=headers)
    if not expected:
        assert response.status_code == 200
    else:
        assert [e["where"] for e in response.json["errors"]] == expected


def test_routes_selector_needs_the_split_to_run_first(orders: PreValidation) -> None:
    app = EchoApp()
    orders.app = app
    body = {"customer": {"email": "a@b.io"}, "items": [{"qty": 1}], "coupon": "bad"}
    after_split = BufferedClient(Extraction(CanarySplit(orders, percent=100)))
    response = after_split.post("/orders", json=body, headers={"X-Gray-ID": "user-1"})
    assert [e["where"] for e in response.json["errors"]] == ["body#/coupon"]
    before_split = BufferedClient(Extraction(orders))
    assert before_split.post("/orders", json=body, headers={"X-Gray-ID": "user-1"}).status_code == 200
    # a route of stable is not gray
    stable = BufferedClient(Extraction(CanarySplit(orders, percent=0)))
    assert stable.post("/orders", json=body, headers={"X-Gray-ID": "user-1"}).status_code == 200


def test_applies_to_all_checks_non_gray_requests_too(orders: PreValidation) -> None:
    client, app = client_for(orders)
    response = client.patch("/orders/7", json={"shipping": {"address": {"country": "US"}}, "note": 5})
    assert [e["where"] for e in response.json["errors"]] == ["body#/shipping/address/country"]
    assert app.calls == 0


def test_middleware_default_applies_to(tmp_path: Path) -> None:
    everything = PreValidation(EchoApp(), openapi=ORDERS, applies_to="all")
    client, _app = client_for(everything)
    assert client.get("/orders?limit=500").status_code == 400
    by_version = PreValidation(EchoApp(), openapi=ORDERS, applies_to={"versions": ["~3.1"]})
    client, _app = client_for(by_version)
    assert client.get("/orders?limit=500", headers={"X-Version": "3.1.4"}).status_code == 400
    assert client.get("/orders?limit=500", headers={"X-Version": "3.2.0"}).status_code == 200


def test_stable_names_are_configurable() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, stable=("stable", "blue"))
    client, _app = client_for(middleware)
    assert client.get("/orders?limit=500", headers={"X-Traffic-Color": "blue"}).status_code == 200
    assert client.get("/orders?limit=500", headers={"X-Traffic-Color": "green"}).status_code == 400


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


# --- the body ---------------------------------------------------------------------


def json_of_size(size: int) -> bytes:
    """A valid order body of exactly ``size`` bytes (padding in a string field)."""
    head = b'{"customer": {"email": "a@b.io"}, "items": [{"qty": 1}], "pad": "'
    tail = b'"}'
    assert size >= len(head) + len(tail)
    return head + b"p" * (size - len(head) - len(tail)) + tail


def form_of_size(size: int) -> bytes:
    head = b"priority=3&note=ok&extra="
    return head + b"%FF" * ((size - len(head)) // 3) + b"z" * ((size - len(head)) % 3)


SIZES = [pytest.param(n, id=f"{n} bytes") for n in (100, 1023, 65_535, 65_536, 65_537, 300_001, DEFAULT_MAX_BODY)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["json", "form"])
def test_the_application_gets_the_same_body_with_content_length(orders: PreValidation, size: int, kind: str) -> None:
    client, app = client_for(orders)
    if kind == "json":
        body, url, method, content_type = json_of_size(size), "/orders", "POST", "application/json"
    else:
        body, url, method, content_type = form_of_size(size), "/orders/7", "PATCH", "application/x-www-form-urlencoded"
    assert len(body) == size
    response = client.open(url, method=method, data=body, content_type=content_type, headers=GRAY)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert app.bodies == [body]
    assert response.json["content_length"] == str(size)
    environ = app.environs[0]
    assert isinstance(environ["wsgi.input"], io.BytesIO)


def test_a_terminated_input_without_content_length_is_read_to_the_end(orders: PreValidation) -> None:
    client, app = client_for(orders)
    body = json_of_size(70_000)
    builder = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json")
    environ = builder.get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    response = call(orders, environ)
    assert response.status_code == 200
    assert app.bodies == [body]
    assert response.json["content_length"] == "70000"


NON_UTF8 = [
    pytest.param(
        "PATCH", "/orders/7", "application/x-www-form-urlencoded", b"priority=1&extra=\xff\xfe\x00\x80latin\xe9", id="raw form bytes"
    ),
    pytest.param(
        "PUT", "/orders/7/items/3", "multipart/form-data; boundary=XyZ",
        b"--XyZ\r\nContent-Disposition: form-data; name=\"qty\"\r\n\r\n2\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\xd8\xff\xe0\r\n\x80\x81"
        + bytes(range(256)) + b"\r\n--XyZ--\r\n",
        id="binary multipart file",
    ),
    pytest.param(
        "POST", "/orders", "application/json",
        '{"customer": {"email": "zoë@exämple.de"}, "items": [{"qty": 2}], "note": "日本語 \\u00e9"}'.encode(),
        id="UTF-8 JSON",
    ),
]


@pytest.mark.parametrize("method, url, content_type, body", NON_UTF8)
def test_bodies_pass_byte_for_byte(orders: PreValidation, method: str, url: str, content_type: str, body: bytes) -> None:
    client, app = client_for(orders)
    response = client.open(url, method=method, data=body, content_type=content_type, headers=GRAY)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert app.bodies == [body]
    assert response.json["content_length"] == str(len(body))


BAD_BODIES = [
    pytest.param(b'{"customer": ', "application/json", "Expecting value: line 1 column 14 (char 13)", id="truncated JSON"),
    pytest.param(b"{'a': 1}", "application/json", "Expecting property name enclosed in double quotes", id="not JSON"),
    pytest.param(b'{"items": NaN}', "application/json", "NaN is not a JSON number", id="NaN"),
    pytest.param(b'{"e": "\xe9"}', "application/json", "invalid continuation byte", id="latin-1 JSON"),
    pytest.param(b"[" * 100_000, "application/json", "nested too deeply", id="deep nesting"),
    pytest.param(b"<order/>", "application/xml", "not application/xml", id="undeclared media type"),
    pytest.param(b"email=a@b.io", "", "not (no Content-Type)", id="no content type"),
    pytest.param(b"--b\r\nbroken", "multipart/form-data; boundary=b", "not valid multipart", id="multipart form not declared"),
]


@pytest.mark.parametrize("body, content_type, reason", BAD_BODIES)
def test_an_unreadable_body_is_a_400_naming_why(orders: PreValidation, body: bytes, content_type: str, reason: str) -> None:
    client, app = client_for(orders)
    response = client.post("/orders", data=body, content_type=content_type or None, headers=GRAY)
    assert response.status_code == 400, response.get_data(as_text=True)
    problem = response.json
    detail = problem["detail"]
    if "multipart" in reason:  # POST /orders declares JSON and urlencoded forms only
        assert "takes a body of type application/json or application/x-www-form-urlencoded, not multipart/form-data" in detail
    else:
        assert reason in detail
    assert problem["errors"][0]["where"] == "body"
    assert app.calls == 0


def test_invalid_multipart_is_a_400() -> None:
    client, app = client_for(PreValidation(EchoApp(), openapi=ORDERS))
    response = client.put(
        "/orders/7/items/3", data=b"--b\r\nno headers end", content_type="multipart/form-data; boundary=b", headers=GRAY
    )
    assert response.status_code == 400
    assert response.json["detail"].startswith("The request body is not valid multipart/form-data")
    assert app.calls == 0


def test_an_empty_body_means_absent_fields(orders: PreValidation) -> None:
    client, app = client_for(orders)
    response = client.post("/orders", data=b"", content_type="application/json", headers=GRAY)
    assert triples(response) == [("body#/customer/email", "present", None)]
    assert client.patch("/orders/7", data=b"", content_type="application/json", headers=GRAY).status_code == 200
    assert app.bodies == [b""]


def test_a_declared_length_past_the_limit_is_413_without_reading() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=1000)
    client, app = client_for(middleware)

    class Untouchable(io.BytesIO):
        def read(self, *args: t.Any) -> bytes:
            raise AssertionError("the body was read")

    builder = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json")
    environ = builder.get_environ()
    environ["wsgi.input"] = Untouchable()
    environ["CONTENT_LENGTH"] = "1001"
    response = call(middleware, environ)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "larger than 1000 bytes" in response.json["detail"]
    assert app.calls == 0
    # at the limit exactly, it passes
    assert client.post("/orders", data=json_of_size(1000), content_type="application/json", headers=GRAY).status_code == 200


def test_a_terminated_body_past_the_limit_is_413() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=100_000)
    client, app = client_for(middleware)
    for size, status in ((100_000, 200), (100_001, 413)):
        environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
        environ["wsgi.input"] = io.BytesIO(json_of_size(size))
        environ["wsgi.input_terminated"] = True
        environ.pop("CONTENT_LENGTH", None)
        assert call(middleware, environ).status_code == status
    assert app.calls == 1


CONTENT_LENGTH_PROBLEMS = [
    pytest.param("12x", b"{}", "The Content-Length header is not a number.", id="not a number"),
    pytest.param("200", b'{"customer": {}}', "The request body ended after 16 of 200 bytes.", id="shorter than declared"),
]


@pytest.mark.parametrize("length, body, detail", CONTENT_LENGTH_PROBLEMS)
def test_content_length_problems_are_400(orders: PreValidation, length: str, body: bytes, detail: str) -> None:
    client, app = client_for(orders)
    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = length
    response = call(orders, environ)
    assert response.status_code == 400
    assert response.json["detail"] == detail
    assert app.calls == 0


def test_a_failing_input_stream_is_a_400(orders: PreValidation) -> None:
    client, app = client_for(orders)

    class Broken(io.RawIOBase):
        def read(self, *args: t.Any) -> bytes:
            raise OSError("connection reset by peer")

    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = Broken()
    environ["CONTENT_LENGTH"] = "10"
    response = call(orders, environ)
    assert response.status_code == 400
    assert response.json["detail"] == "The request body could not be read: connection reset by peer"
    assert app.calls == 0


NOT_READ = [
    pytest.param("POST", "/orders", {}, id="non-gray request"),
    pytest.param("GET", "/orders?limit=5", GRAY, id="gray, only query rules apply"),
    pytest.param("POST", "/orders/7/items", GRAY, id="gray, no operation"),
    pytest.param("DELETE", "/orders/7", GRAY, id="gray, operation without rules"),
]


@pytest.mark.parametrize("method, url, headers", NOT_READ)
def test_the_body_is_not_read_when_no_applicable_rule_needs_it(
    orders: PreValidation, method: str, url: str, headers: dict[str, str]
) -> None:
    client, app = client_for(orders)
    original = io.BytesIO(b'{"customer": 1}')
    environ = EnvironBuilder(url, method=method, headers=headers, content_type="application/json").get_environ()
    environ["wsgi.input"] = original
    environ["CONTENT_LENGTH"] = "15"
    response = call(orders, environ)
    assert response.status_code == 200
    assert app.environs[0]["wsgi.input"] is original
    assert app.bodies == [b'{"customer": 1}']


def test_the_body_is_buffered_once() -> None:
    """One copy of the body is held: the parser and the new stream share it."""
    size = 4 * 1024 * 1024
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=size)
    body = b'{"customer": {"email": "a@b.io"}, "items": [{"qty": 1}]}'
    body += b" " * (size - len(body))  # whitespace: parsing it makes no objects
    peaks: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        peaks.append(tracemalloc.get_traced_memory()[1])
        start_response("204 No Content", [])
        return []

    middleware.app = app
    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(size)
    extraction = Extraction(middleware)
    tracemalloc.start()
    try:
        result = extraction(environ, lambda status, headers, exc_info=None: lambda data: None)
        close = getattr(result, "close", None)
        if close is not None:
            close()
    finally:
        tracemalloc.stop()
    # Reading all of a BytesIO hands out its own buffer, so the one new
    # allocation of body size is the text json.loads decodes; a second
    # buffer of the body (a copy for the new wsgi.input) would make it 2x.
    assert peaks and peaks[0] < 1.5 * size, peaks[0] / size
    assert environ["wsgi.input"].getvalue() == body


# --- a real server: chunked bodies ---------------------------------------------------


@pytest.fixture
def served() -> t.Iterator[tuple[int, EchoApp]]:
    app = EchoApp()
    middleware = PreValidation(app, openapi=ORDERS, max_body=200_000)
    server = make_server("127.0.0.1", 0, Extraction(middleware), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.port, app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send(port: int, body: bytes, *, chunked: bool, content_type: str = "application/json") -> tuple[int, dict[str, t.Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type, **GRAY}
        if chunked:
            chunks = (body[i:i + 7_000] for i in range(0, len(body), 7_000))
            conn.request("POST", "/orders", body=chunks, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/orders", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [80, 6_999, 7_000, 65_537, 200_000])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_over_http_the_application_gets_the_same_body(served: tuple[int, EchoApp], size: int, chunked: bool) -> None:
    port, app = served
    body = json_of_size(size)
    status, answer = send(port, body, chunked=chunked)
    assert status == 200, answer
    assert answer["length"] == size
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["content_length"] == str(size)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_over_http_past_the_limit_is_413_and_invalid_is_400(served: tuple[int, EchoApp], chunked: bool) -> None:
    port, app = served
    status, answer = send(port, json_of_size(200_001), chunked=chunked)
    assert status == 413 and answer["status"] == 413
    status, answer = send(port, b'{"customer": {"email": "x"}, "items": [{"qty": 99}]}', chunked=chunked)
    assert status == 400
    assert [e["where"] for e in answer["errors"]] == ["body#/customer/email", "body#/items/0/qty"]
    status, answer = send(port, b"priority=1&note=x&coupon=ABCDEF&customer=c", chunked=chunked,
                          content_type="application/x-www-form-urlencoded")
    assert status == 400  # the JSON-only required email is absent in the form
    assert app.calls == 0


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

    from graywsgi.prevalidation.gray_rules import FORMAT_CHECKER, _fast_check

    fast = _fast_check(schema)
    assert fast is not None
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    for value in values:
        if fast(value):
            assert validator.is_valid(value), (schema, value)
    assert any(fast(value) for value in values), "the fast path never helps"


def test_nested_constraints_have_no_fast_check() -> None:
    from graywsgi.prevalidation.gray_rules import _fast_check

    assert _fast_check({"type": "array", "items": {"maximum": 3}}) is None
