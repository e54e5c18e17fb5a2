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

On a busy machine the timed ratios move by more than the budget's margin
(one full run on a host at half speed put header rules at 1.39x and the
Router's case at 1.50x). ``--count`` settles it without a clock::

    python bench/rule_scaling.py --count                  # every indexed shape, 10 and 10,000 rules
    python bench/rule_scaling.py --count --shape header   # one shape (the option repeats)

It counts the instructions of one request at 10 and at 10,000 rules with
valgrind's callgrind, the way ``bench/callgrind.py`` counts the chain: a
fresh Python per run, 200 and then 1,200 requests after the same warm-up,
the difference of the two totals over the 1,000 between them (the rule
set's construction cancels out). An index that works costs the same
instructions at both sizes; one that scans grows with the rules. The rule
set is frozen out of the cyclic collector's reach after the warm-up
(``gc.freeze()``): a full collection walks every object of it, and
whether one fell between the ends of the two runs moved a shape's count
by thousands of instructions a request.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import callgrind  # bench/callgrind.py: valgrind's count of one run
from run import (  # bench/run.py: the same floor app and loop
    _start_response,
    bare_app,
    positive,
    run_once,
)
from werkzeug.test import create_environ

from graywsgi import Extraction, Router
from graywsgi.rules.model import (
    Backend,
    Cluster,
    PathMatch,
    Rule,
    RuleSet,
    ValueCondition,
)

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


def child(shape: str, count: int, requests: int) -> None:
    """Serve ``shape``'s request with ``count`` rules: 50 warm-up requests, then ``requests`` (what callgrind counts)."""
    app = Extraction(Router(bare_app, ruleset(shape, count)))
    environ = request(shape, count)
    check(environ, shape, count)
    run_once(app, environ, 50)
    # The rule set out of the cyclic collector's reach, as a preloaded
    # gunicorn app can put it: a full collection walks every object of a
    # 10,000-rule set, and whether one falls between the two runs' ends
    # moved a shape's count by thousands of instructions a request --
    # the collector's cost, not the index's.
    gc.collect()
    gc.freeze()
    run_once(app, environ, requests)


def count_instructions(*, shapes: t.Sequence[str] | None = None, counts: tuple[int, int] = (COUNTS[0], COUNTS[-1]),
                       first: int = 200, second: int = 1_200, timeout: float = 600.0,
                       log: t.TextIO | None = None) -> dict[str, t.Any]:
    """Instructions per request for each shape at the two rule counts, and their ratio (see the module docs)."""
    shapes = list(shapes) if shapes else [shape for shape, (_match, indexed) in SHAPES.items() if indexed]
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown:
        raise ValueError(f"no rule shape {', '.join(map(repr, unknown))}; the shapes are {', '.join(SHAPES)}")
    callgrind.check_runs(first, second)
    per_request: dict[str, dict[int, int]] = {}
    for shape in shapes:
        per_request[shape] = {}
        for count in counts:
            low, high = (callgrind.collected([__file__, "--child", shape, str(count), str(requests)],
                                             f"{shape} with {count} rules", timeout)
                         for requests in (first, second))
            per_request[shape][count] = round((high - low) / (second - first))
            if log:
                print(f"rule scaling, {shape}, {count:,} rules: {per_request[shape][count]:,} instructions per request",
                      file=log)
    ratios = {shape: found[counts[1]] / found[counts[0]] for shape, found in per_request.items()}
    return {"counts": list(counts), "requests": [first, second], "instructions": per_request, "ratios": ratios}


def count_table(result: dict[str, t.Any]) -> str:
    low, high = result["counts"]
    first, second = result["requests"]
    lines = [(f"rule scaling, Extraction + Router, instructions per request (valgrind --tool=callgrind; runs of "
              f"{first:,} and {second:,} requests)"),
             f"{'shape':14} {low:>10,} {high:>10,} {f'{high:,}/{low:,}':>10}"]
    for shape, ratio in result["ratios"].items():
        found = result["instructions"][shape]
        lines.append(f"{shape:14} {found[low]:10,} {found[high]:10,} {ratio:9.3f}x")
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (with --count: 1,000 rules, not 10,000)")
    parser.add_argument("--repeat", type=positive(int), default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count", action="store_true", help="count instructions with callgrind instead of timing")
    parser.add_argument("--shape", action="append", choices=tuple(SHAPES), help="with --count: this shape only")
    parser.add_argument("--child", nargs=3, metavar=("SHAPE", "RULES", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        shape, rules, requests = args.child
        if shape not in SHAPES or not rules.isdigit() or not requests.isdigit():
            parser.error(f"--child takes a shape ({', '.join(SHAPES)}) and two numbers")
        child(shape, int(rules), int(requests))
        return 0
    if args.shape and not args.count:
        parser.error("--shape goes with --count")
    if args.count:
        counts = (COUNTS[0], COUNTS[1]) if args.quick else (COUNTS[0], COUNTS[-1])
        try:
            result = count_instructions(shapes=args.shape, counts=counts, log=sys.stderr)
        except RuntimeError as exc:  # valgrind missing or failed
            print(f"rule_scaling.py: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2) if args.json else count_table(result))
        return 0
    result = run(quick=args.quick, repeat=args.repeat, log=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0

if __name__ == "__main__":
    sys.exit(main())
