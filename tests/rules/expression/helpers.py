"""Shared by the expression tests: a sample request, constant facts and nested sources."""

from __future__ import annotations

import typing as t

from graywsgi.rules.expression.facts import MappingFacts

REQUEST = MappingFacts(
    {
        "host": "shop.example.com",
        "path": "/api/v2/items",
        "method": "GET",
        "scheme": "https",
        "env": "prod",
        "version": "1.4.0",
        "api_version": "2",
        "tenant": "acme",
        "role": "ADMIN",
        "gray_id": "u-42",
        "canary_id": "",
        "traffic_color": "Gray",
        "remote_addr": "203.0.113.7",
    },
    headers={
        "X-Tier": "gold",
        "X-Build": "120",
        "X-Ratio": "0.25",
        "X-Neg": "-3",
        "X-Empty": "",
        "X-Long-Number": "9" * 65,
        "X-Quote": "a\"b'c\\d",
        "X-Latin": "caf\xe9",
        "X-Tab": "a\tb",
    },
    query={"lang": "en", "n": "10"},
    cookies={"beta": "yes", "score": "07"},
)


class ConstantFacts:
    """Facts that answer every question with one value of any type."""

    def __init__(self, value: object) -> None:
        self.value = value

    def attribute(self, name: str) -> t.Any:
        return self.value

    def header(self, name: str) -> t.Any:
        return self.value

    def query(self, name: str) -> t.Any:
        return self.value

    def cookie(self, name: str) -> t.Any:
        return self.value


def nested(kind: str, levels: int) -> str:
    if kind == "parentheses":
        return "(" * levels + 'path == "/"' + ")" * levels
    if kind == "negations":
        return "!" * levels + "path"
    if kind == "methods":
        return "path" + ".lower()" * levels
    raise AssertionError(kind)
