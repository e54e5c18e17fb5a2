"""The path index (graywsgi/prevalidation/openapi_path_index.py): finding the operation of a method and path."""

from __future__ import annotations

import pytest

from graywsgi.prevalidation.openapi_path_index import PathIndex


INDEX = PathIndex[str]()
for _method, _template in [
    ("get", "/orders"),
    ("get", "/orders/"),
    ("get", "/orders/{id}"),
    ("get", "/orders/export.{format}"),
    ("get", "/orders/mine"),
    ("get", "/orders/{id}/items/{item}"),
    ("get", "/orders/{order}/lines"),
    ("get", "/files/{name}.{ext}"),
    ("post", "/orders/{id}"),
    ("get", "/"),
]:
    INDEX.add(_method, _template, f"{_method} {_template}")


MATCHES = [
    pytest.param("get", "/orders", ("get /orders", {}), id="literal"),
    pytest.param("get", "/orders/", ("get /orders/", {}), id="trailing slash is its own path"),
    pytest.param("get", "/orders/42", ("get /orders/{id}", {"id": "42"}), id="parameter"),
    pytest.param("post", "/orders/42", ("post /orders/{id}", {"id": "42"}), id="method"),
    pytest.param("get", "/orders/mine", ("get /orders/mine", {}), id="literal beats parameter"),
    pytest.param("get", "/orders/export.csv", ("get /orders/export.{format}", {"format": "csv"}), id="partial segment beats parameter"),
    pytest.param("get", "/orders/export", ("get /orders/{id}", {"id": "export"}), id="partial segment needs its text"),
    pytest.param("get", "/orders/7/items/9", ("get /orders/{id}/items/{item}", {"id": "7", "item": "9"}), id="two parameters"),
    pytest.param("get", "/orders/7/lines", ("get /orders/{order}/lines", {"order": "7"}), id="each template keeps its names"),
    pytest.param("get", "/files/a.b.tar", ("get /files/{name}.{ext}", {"name": "a", "ext": "b.tar"}), id="two parameters in a segment"),
    pytest.param("get", "/", ("get /", {}), id="root"),
    pytest.param("get", "/orders//items/9", None, id="an empty segment is no parameter"),
    pytest.param("delete", "/orders/42", None, id="no such method"),
    pytest.param("get", "/orders/7/items", None, id="no such path"),
    pytest.param("get", "orders", None, id="not absolute"),
]


@pytest.mark.parametrize("method, path, expected", MATCHES)
def test_path_index(method: str, path: str, expected: tuple[str, dict[str, str]] | None) -> None:
    assert INDEX.match(method, path) == expected


def test_path_index_with_many_paths_visits_only_its_own() -> None:
    index = PathIndex[int]()
    for i in range(10_000):
        index.add("get", f"/r{i}/{{id}}/x{i % 7}", i)
    assert index.match("get", "/r9876/abc/x6") == (9876, {"id": "abc"})
    assert index.match("get", "/r9876/abc/x5") is None
    # the root has one literal edge per first segment and no scan list
    root = index._root
    assert len(root.literal) == 10_000 and not root.patterns and root.param is None
