"""Loading OpenAPI documents (graywsgi/prevalidation/openapi.py): unreadable files, references."""

from __future__ import annotations

from pathlib import Path

import pytest

from graywsgi.prevalidation.layer import PreValidation
from graywsgi.prevalidation.openapi import load_openapi
from graywsgi.prevalidation.openapi_model import OpenAPIError
from tests.prevalidation.helpers import DATA, app

pytestmark = pytest.mark.usefixtures("no_network")


FILE_PROBLEMS = [
    pytest.param(b"openapi: 3.1.0\npaths: {}\npaths: {}\n", "orders.yaml:3: (document): #: duplicate key 'paths'", id="duplicate key"),
    pytest.param(b"openapi: 3.1.0\ninfo: [\n", "orders.yaml:3: (document): #: invalid YAML", id="YAML syntax"),
    pytest.param(b"openapi: \xff\n", "orders.yaml: (document): #: not UTF-8", id="not UTF-8"),
    pytest.param(b"- openapi\n", "the top level must be a mapping", id="top level list"),
    pytest.param(b"openapi: 3.1.0\ninfo: !!binary aGVsbG8=\n", "not representable as JSON", id="YAML binary"),
]


@pytest.mark.parametrize("content, message", FILE_PROBLEMS)
def test_unreadable_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("orders.yaml").write_bytes(content)
    with pytest.raises(OpenAPIError) as caught:
        PreValidation(app, openapi="orders.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("orders.yaml")


def test_a_missing_document(tmp_path: Path) -> None:
    with pytest.raises(OpenAPIError, match="nope.yaml: \\(document\\): #: cannot read the file: No such file"):
        PreValidation(app, openapi=tmp_path / "nope.yaml")


def test_invalid_json_document(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text('{"openapi": "3.1.0",\n "info": }', "utf-8")
    with pytest.raises(OpenAPIError, match=r"api.json:2: \(document\): #: invalid JSON: Expecting value"):
        PreValidation(app, openapi=path)


def test_references_resolve_locally_and_to_sibling_files() -> None:
    document = load_openapi(DATA / "orders-3.1.yaml")
    by_label = {operation.label: operation for operation in document.operations}
    limit = by_label["GET /orders"].parameters[("query", "limit")]
    assert limit.schema is not None and limit.schema.value == {"type": "integer"}
    assert limit.node.location == ("components", "parameters", "Limit")
    item = by_label["PUT /orders/{order_id}/items/{item_id}"].body["application/json"]
    assert item is not None and item.file.endswith("common.yaml") and item.location == ("components", "schemas", "Item")
    assert set(document.files) == {str((DATA / name).resolve()) for name in ("orders-3.1.yaml", "common.yaml")}
