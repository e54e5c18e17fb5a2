"""Shared by the tests of graywsgi.rules: rule sets compiled in Python and requests to decide."""

from __future__ import annotations

import typing as t

from werkzeug.test import create_environ

from graywsgi.core.context import GrayContext
from graywsgi.rules.decision import RequestFacts
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.rules.routing import CompiledRules

CLUSTERS = {"stable": Cluster(group="A"), "canary": Cluster(group="B"), "v2": Cluster()}


def compiled(*rules: Rule, **options: t.Any) -> CompiledRules:
    return CompiledRules(RuleSet(clusters=options.pop("clusters", CLUSTERS), rules=rules, **options))


def facts(
    path: str = "/",
    host: str = "shop.example.com",
    headers: dict[str, str] | None = None,
    query: str = "",
    **context: t.Any,
) -> RequestFacts:
    environ = create_environ(path, base_url=f"http://{host}/", headers=headers or {}, query_string=query)
    gray_id = context.pop("gray_id", None)
    ctx = GrayContext(
        request_id="r",
        gray_id=gray_id,
        gray_key=gray_id.encode("utf-8") if gray_id is not None else None,
        **context,
    )
    return RequestFacts(environ, ctx)


EVERYONE = (Backend("canary", 100),)


def route(rules: CompiledRules, f: RequestFacts) -> str | None:
    decision = rules.decide(f)
    return None if decision is None else decision.route
