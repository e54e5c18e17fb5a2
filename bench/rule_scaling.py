"""Rule scaling for every rule shape: ``Extraction + Router`` with 10, 1,000 and 10,000 rules.

Run from the repository root::

    python bench/rule_scaling.py            # 5 repetitions of about 0.2 s per case
    python bench/rule_scaling.py --quick    # a smoke run

Each shape's rule set holds N rules that differ only in the value they
match on (rule ``i`` matches host ``h<i>.example.com``, header ``X-Team:
t<i>``, ...), and the request matches the one in the middle, so a rule
set that is scanned checks half of them. The indexable shapes (host,
prefix, template, header, query, cookie) must cost the same at 10,000
rules as at 10 (budget: at most 1.2 times); an API-version range and an
expression cannot be indexed and are checked one by one, so their cost
grows with the number of rules before the one that matches (no budget;
docs/routing.md gives the figures). Repetitions go round-robin over every
case, so a noisy moment hits all of them alike; the table gives medians.
"""

from __future__ import annotations

import statistics
import sys
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from werkzeug.test import create_environ

from graywsgi import Extraction, Router
from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet, ValueCondition
from run import _start_response, bare_app, run_once, table_script  # bench/run.py: the same floor app, loop, command line

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

COUNTS = (10, 1_000, 10_000)
SPLIT = (Backend("canary", 15),)
#: Shape -> (the match of rule i, whether the index serves it).
SHAPES: dict[str, tuple[t.Callable[[int], dict[str, t.Any]], bool]] = {
    "host": (lambda i: {"hosts": (f"h{i}.example.com",)}, True),
    "prefix": (lambda i: {"path": PathMatch(prefix=f"/p{i}")}, True),
    "template": (lambda i: {"path": PathMatch(template=f"/t{i}/{{id}}")}, True),
    "header": (lambda i: {"headers": (ValueCondition("X-Team", exact=f"t{i}"),)}, True),
    "query": (lambda i: {"query": (ValueCondition("team", exact=f"t{i}"),)}, True),
    "cookie": (lambda i: {"cookies": (ValueCondition("team", exact=f"t{i}"),)}, True),
    "version range": (lambda i: {"api_version": f">={i}.0.0 <{i + 1}.0.0"}, False),
    "expression": (lambda i: {"when": f'header["X-Team"] == "t{i}"'}, False),
}


def ruleset(shape: str, count: int) -> RuleSet:
    match, _indexed = SHAPES[shape]
    rules = tuple(Rule(name=f"r{i}", split=SPLIT, **match(i)) for i in range(count))
    return RuleSet(clusters={"stable": Cluster(), "canary": Cluster()}, rules=rules)


def request(shape: str, count: int) -> WSGIEnvironment:
    """A request matching rule ``count // 2`` of ``shape``'s rule set."""
    target = count // 2
    host, path, query, headers = "shop.example.com", "/orders/42", "", {"X-Gray-ID": "user-7f3a9c2e"}
    if shape == "host":
        host = f"h{target}.example.com"
    elif shape == "prefix":
        path = f"/p{target}/x"
    elif shape == "template":
        path = f"/t{target}/42"
    elif shape in ("header", "expression"):
        headers["X-Team"] = f"t{target}"
    elif shape == "query":
        query = f"team=t{target}"
    elif shape == "cookie":
        headers["Cookie"] = f"team=t{target}"
    elif shape == "version range":
        headers["X-Api-Version"] = f"{target}.0.0"
    return create_environ(path, base_url=f"http://{host}/", headers=headers, query_string=query)


def check(environ: WSGIEnvironment, shape: str, count: int) -> None:
    """The request really matches the rule in the middle (else the timing means nothing)."""
    seen: dict[str, t.Any] = {}

    def spy(inner_environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.update(inner_environ)
        return bare_app(inner_environ, start_response)

    probe = Extraction(Router(spy, ruleset(shape, count)))
    for _chunk in probe(dict(environ), _start_response):
        pass
    decision = seen.get("graywsgi.decision")
    if decision is None or decision.rule != f"r{count // 2}":
        raise RuntimeError(f"{shape}, {count} rules: the request matched {decision!r}, not r{count // 2}")


def run(*, quick: bool = False, repeat: int = 5, target: float = 0.2, log: t.TextIO | None = None) -> dict[str, t.Any]:
    """Median ns per request for every shape and count, and each shape's 10,000/10 ratio."""
    if quick:
        repeat, target = 1, 0.02
    cases: dict[tuple[str, int], tuple[WSGIApplication, WSGIEnvironment, int]] = {}
    for shape in SHAPES:
        for count in COUNTS:
            app: WSGIApplication = Extraction(Router(bare_app, ruleset(shape, count)))
            environ = request(shape, count)
            check(environ, shape, count)
            run_once(app, environ, 50)  # warm: the first request fills the remembered candidates
            loops = 50
            while (elapsed := run_once(app, environ, loops)) < target / 4:
                loops *= 4
            cases[(shape, count)] = (app, environ, max(50, int(loops * target / elapsed)))
        if log:
            print(f"rule scaling: {shape} built", file=log)
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in cases}
    for _ in range(repeat):
        for key, (timed, environ, loops) in cases.items():
            samples[key].append(run_once(timed, environ, loops) / loops * 1e9)
    medians = {f"{shape}|{count}": statistics.median(samples[(shape, count)]) for shape, count in cases}
    ratios = {shape: medians[f"{shape}|{COUNTS[-1]}"] / medians[f"{shape}|{COUNTS[0]}"] for shape in SHAPES}
    return {"counts": list(COUNTS), "median_ns": medians, "ratios": ratios,
            "indexed": {shape: SHAPES[shape][1] for shape in SHAPES}}


def table(result: dict[str, t.Any]) -> str:
    counts = result["counts"]
    lines = ["rule scaling, Extraction + Router, median ns per request (the request matches the middle rule)",
             f"{'shape':14} {'indexed':>8} " + " ".join(f"{c:>10,}" for c in counts) + f" {'10,000/10':>10}"]
    for shape, ratio in result["ratios"].items():
        cells = " ".join(f"{result['median_ns'][f'{shape}|{c}']:10,.0f}" for c in counts)
        lines.append(f"{shape:14} {'yes' if result['indexed'][shape] else 'no':>8} {cells} {ratio:9.2f}x")
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    return table_script(argv, __doc__, run, table, repeat=5)

if __name__ == "__main__":
    sys.exit(main())
