"""In-process cost of graywsgi layers, per request.

Run from the repository root::

    python bench/run.py            # full run (about a minute)
    python bench/run.py --quick    # smoke run, used by the test suite

Method: one WSGI environ is built per case; each call gets a fresh shallow
copy, the response iterable is consumed and closed. Loop counts are
calibrated so one repetition takes about ``--target`` seconds; each case is
repeated ``--repeat`` times, round-robin over the cases, and the median and
spread (min-max) reported in ns per request, plus the ratio of medians against the bare WSGI floor
measured in the same run. The machines are shared and noisy: compare ratios
from one run, never absolute times across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import typing as t

from werkzeug.test import create_environ

from graywsgi import CanarySplit, Extraction, Router
from graywsgi.guard import Guard
from graywsgi.rules import Backend, Cluster, PathMatch, Rule, RuleSet

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def bare_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


class PassThrough:
    """One do-nothing middleware layer: the cost of a wrapper as such."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.app(environ, start_response)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
    return _write


def _write(data: bytes) -> None:
    return None


def gray_environ() -> WSGIEnvironment:
    return create_environ(
        "/orders/42",
        base_url="http://shop.example.com/",
        headers={
            "X-Gray-ID": "user-7f3a9c2e-41d8-4f3b-9a51-0c6e2b7d8e10",
            "X-Env": "prod",
            "X-Version": "1.5.0",
            "X-Request-ID": "0af7651916cd43dd8448eb211c80319c",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )


def flask_hello() -> WSGIApplication:
    from flask import Flask

    app = Flask("bench")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return "ok"

    return app


def host_prefix_rules(count: int) -> RuleSet:
    """``count`` host/prefix rules; the benchmark request matches one of them."""
    rules = [
        Rule(
            name=f"r{i}",
            hosts=(f"h{i}.example.com",),
            path=PathMatch(prefix=f"/p{i % 50}"),
            split=(Backend("canary", 15),),
        )
        for i in range(count - 1)
    ]
    rules.insert(count // 2, Rule(
        name="target", hosts=("shop.example.com",), path=PathMatch(prefix="/orders"), split=(Backend("canary", 15),)
    ))
    return RuleSet(clusters={"stable": Cluster(), "canary": Cluster()}, rules=tuple(rules))


def all_canary() -> RuleSet:
    return RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="all", split=(Backend("canary", 100),)),),
    )


class WithJSONBody:
    """Turns the shared GET environ into ``bench/prevalidation.py``'s POST with a fresh body.

    Setting the keys and the new ``io.BytesIO`` is part of the case's cost.
    """

    def __init__(self, app: WSGIApplication) -> None:
        from prevalidation import BODY  # bench/prevalidation.py

        self.app = app
        self.body = BODY

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        environ.update(
            REQUEST_METHOD="POST",
            PATH_INFO="/orders/42/items",
            QUERY_STRING="limit=10",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH=str(len(self.body)),
            HTTP_X_CLIENT="ios",
        )
        environ["wsgi.input"] = io.BytesIO(self.body)
        return self.app(environ, start_response)


def prevalidation_cases() -> dict[str, WSGIApplication]:
    from prevalidation import write_spec  # bench/prevalidation.py

    from graywsgi.prevalidation import PreValidation

    spec = write_spec()
    return {
        "Extraction + PreValidation, no rule for the op": Extraction(PreValidation(bare_app, openapi=spec)),
        "Extraction + PreValidation, 6 rules, JSON body": WithJSONBody(Extraction(PreValidation(bare_app, openapi=spec))),
        "same environ change, no PreValidation": WithJSONBody(Extraction(bare_app)),
    }


def cases() -> dict[str, WSGIApplication]:
    return {
        "bare WSGI (floor)": bare_app,
        "pass-through layer": PassThrough(bare_app),
        "Extraction": Extraction(bare_app),
        "Extraction + CanarySplit (chain so far)": Extraction(CanarySplit(bare_app, percent=15)),
        "Extraction + Router, 10 host/prefix rules": Extraction(Router(bare_app, host_prefix_rules(10))),
        "Extraction + Router, 1,000 rules": Extraction(Router(bare_app, host_prefix_rules(1_000))),
        "Extraction + Router, 10,000 rules": Extraction(Router(bare_app, host_prefix_rules(10_000))),
        "Extraction + Router + Guard (canary, breaker closed)": Extraction(
            Router(bare_app, all_canary(), apps={"canary": bare_app}, guard=Guard())
        ),
        "Flask hello-world": flask_hello(),
        "chain + Flask hello-world": Extraction(CanarySplit(flask_hello(), percent=15)),
        **prevalidation_cases(),
    }


def run_once(app: WSGIApplication, environ: WSGIEnvironment, loops: int) -> float:
    copy = dict.copy
    start = time.perf_counter()
    for _ in range(loops):
        result = app(copy(environ), _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return time.perf_counter() - start


def calibrate(app: WSGIApplication, environ: WSGIEnvironment, target: float) -> int:
    loops = 100
    while True:
        elapsed = run_once(app, environ, loops)
        if elapsed >= target / 4:
            return max(100, int(loops * target / elapsed))
        loops *= 4


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.5, help="seconds per repetition")
    parser.add_argument("--quick", action="store_true", help="3 short repetitions (smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.target = 3, 0.02
    environ = gray_environ()
    apps = cases()
    loops_for = {name: calibrate(app, environ, args.target) for name, app in apps.items()}
    # Repetitions go round-robin over the cases, so a noisy moment on the
    # shared machine hits every case alike and same-run ratios stay fair.
    samples_for: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.repeat):
        for name, app in apps.items():
            loops = loops_for[name]
            samples_for[name].append(run_once(app, environ, loops) / loops * 1e9)
    results: dict[str, dict[str, float]] = {}
    for name, samples in samples_for.items():
        loops = loops_for[name]
        results[name] = {
            "median_ns": statistics.median(samples),
            "min_ns": min(samples),
            "max_ns": max(samples),
            "loops": loops,
        }
    floor = results["bare WSGI (floor)"]["median_ns"]
    for row in results.values():
        row["ratio_to_floor"] = row["median_ns"] / floor
    chain = results["Extraction + CanarySplit (chain so far)"]["median_ns"]
    added = chain - floor
    if args.json:
        print(json.dumps({"cases": results, "chain_added_ns": added}, indent=2))
        return 0
    print(f"{'case':45} {'median ns':>10} {'spread ns':>17} {'x floor':>8}")
    for name, row in results.items():
        spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
        print(f"{name:45} {row['median_ns']:10.0f} {spread:>17} {row['ratio_to_floor']:8.2f}")
    print(f"\nchain so far adds {added:.0f} ns per request over the bare floor (same-run medians)")
    ten = results["Extraction + Router, 10 host/prefix rules"]["median_ns"]
    many = results["Extraction + Router, 10,000 rules"]["median_ns"]
    print(f"Router with 10,000 rules / with 10 rules: {many / ten:.3f} (same-run medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
