"""Which requests the gray rules apply to (graywsgi/prevalidation/gray_rule_selector.py): gray traffic and applies_to."""

from __future__ import annotations

from pathlib import Path

import pytest

from graywsgi import CanarySplit, Extraction
from graywsgi.prevalidation.layer import PreValidation
from tests.conftest import BufferedClient
from tests.prevalidation.helpers import ORDERS, EchoApp, client_for


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
