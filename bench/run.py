"""In-process cost of graywsgi layers, per request.

Run from the repository root::

    python bench/run.py                 # full run: in-process cases, peers, memory
                                        # (1e5 and 1e6 requests), gunicorn A/B, budgets
    python bench/run.py --quick         # smoke run in seconds, used by the test suite
    python bench/run.py --plot docs/performance-layers.png   # also draw the plot
    python bench/run.py --profile       # cProfile of the core chain, then exit

Method: one WSGI environ is built per case; each call gets a fresh shallow
copy, the response iterable is consumed and closed. Loop counts are
calibrated so one repetition takes about ``--target`` seconds; each case is
repeated ``--repeat`` times, round-robin over the cases, and the median and
spread (min-max) reported in ns per request, plus the ratio of medians against the bare WSGI floor
measured in the same run. The machines are shared and noisy: compare ratios
from one run, never absolute times across runs.

The *core chain* is ``Extraction + Router + Guard`` on a canary route with
the breaker closed (the DESIGN's extraction + split + breaker window +
context bind/release, metrics disabled), as in ``bench/metrics.py``; a
lighter variant, ``Extraction + CanarySplit`` plus one ``RouteBreaker``
admit/record per request, is measured next to it, and so is the *fused
floor* (``bench/fused_floor.py``): one hand-written class doing a subset of
the chain's work, to show what plain, lean Python spends on that much
of it. Peers (openapi-core, pybreaker, GrowthBook) run in the same
round-robin as graywsgi's layers.
Memory runs the full chain (Metrics + core chain + PreValidation of a JSON
body) with ``tracemalloc`` on. ``bench/gunicorn_ab.py`` gives the
throughput under gunicorn, with the fused floor loaded beside the chain in
the same rounds (``--also fused``). The run ends with the budget summary (DESIGN §5),
PASS or MISS with the measured figure.
"""

from __future__ import annotations

import argparse
import gc
import os
import io
import json
import math
import socket
import statistics
import sys
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from werkzeug.test import create_environ

from graywsgi import CanarySplit, Extraction, Router
from graywsgi.layers.guard import Guard
from graywsgi.rules.model import Backend, Cluster, PathMatch, Rule, RuleSet
import budgets  # bench/budgets.py
from budgets import (  # the case names the budget summary reads
    CORE,
    CORE_METRICS,
    FLOOR,
    FUSED,
    IN_APP_CORE,
    IN_APP_FLOOR,
    PV_CORE,
    PV_CORE_ONLY,
    PV_FLOOR,
    PV_OURS,
    RULES,
)
from fused_floor import FusedFloor  # bench/fused_floor.py
from reference import Reference  # bench/reference.py

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

    from graywsgi.prevalidation.layer import PreValidation

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
        REFERENCE: Reference(bare_app),
        "Extraction": Extraction(bare_app),
        "Extraction + CanarySplit (chain so far)": Extraction(CanarySplit(bare_app, percent=15)),
        "Extraction + Router, 10 host/prefix rules": Extraction(Router(bare_app, host_prefix_rules(10))),
        "Extraction + Router, 1,000 rules": Extraction(Router(bare_app, host_prefix_rules(1_000))),
        "Extraction + Router, 10,000 rules": Extraction(Router(bare_app, host_prefix_rules(10_000))),
        "Extraction + Router + Guard (canary, breaker closed)": Extraction(
            Router(bare_app, all_canary(), apps={"canary": bare_app}, guard=Guard())
        ),
        FLASK: flask_hello(),
        "chain + Flask hello-world": Extraction(CanarySplit(flask_hello(), percent=15)),
        EXTRACTION_FLASK: Extraction(flask_hello()),
        CORE_FLASK: core_chain(flask_hello()),
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


class WindowRecord:
    """One ``RouteBreaker`` admit + record per request around the application (graywsgi's window)."""

    def __init__(self, app: WSGIApplication) -> None:
        from graywsgi.core.breaker import RouteBreaker

        self.app = app
        self.breaker = RouteBreaker("canary")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        breaker = self.breaker
        admission = breaker.admit()
        try:
            result = self.app(environ, start_response)
        except Exception:
            breaker.record(admission, error=True, slow=False)
            raise
        breaker.record(admission, error=False, slow=False)
        return result


class PyBreakerCall:
    """The same job done by ``pybreaker``: the application called through ``CircuitBreaker.call``."""

    def __init__(self, app: WSGIApplication) -> None:
        import pybreaker

        self.app = app
        self.breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.breaker.call(self.app, environ, start_response)


ROLLOUT_FEATURES = {
    "canary": {"defaultValue": False, "rules": [{"force": True, "coverage": 0.15, "hashAttribute": "id"}]}
}


class GrowthBookSplit:
    """A 15 % percentage rollout decided by GrowthBook on the ``X-Gray-ID`` header.

    One long-lived ``GrowthBook`` instance (favourable to it: building one
    per request costs more); per request the attributes are set and the
    feature evaluated, and the route written to the environ as CanarySplit does.
    """

    def __init__(self, app: WSGIApplication) -> None:
        from growthbook import GrowthBook

        self.app = app
        self.growthbook = GrowthBook(features=ROLLOUT_FEATURES)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        growthbook = self.growthbook
        growthbook.set_attributes({"id": environ.get("HTTP_X_GRAY_ID", "")})
        environ["HTTP_X_ROUTE_TO"] = "canary" if growthbook.is_on("canary") else "stable"
        return self.app(environ, start_response)


class WithContext:
    """Puts the gray context Extraction would build into the environ (built once, outside the timing)."""

    def __init__(self, app: WSGIApplication) -> None:
        from graywsgi.core.context import ENVIRON_KEY

        seen: dict[str, object] = {}

        def grab(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
            seen["context"] = environ[ENVIRON_KEY]
            return bare_app(environ, start_response)

        consume(Extraction(grab)(gray_environ(), _start_response))
        self.key = ENVIRON_KEY
        self.context = seen["context"]
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        environ[self.key] = self.context
        return self.app(environ, start_response)


class Alongside:
    """Serves ``first`` (a request of its own, response consumed), then ``second``'s answer.

    A server runs the application between graywsgi's steps, and the
    application's work pushes graywsgi's code and data out of the CPU's
    caches. ``Alongside(flask, core_chain())`` against ``Alongside(flask,
    bare_app)`` is the core chain's cost in that company.
    """

    def __init__(self, first: WSGIApplication, second: WSGIApplication) -> None:
        self.first = first
        self.second = second

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        consume(self.first(dict(environ), start_response))
        return self.second(environ, start_response)


def consume(result: t.Iterable[bytes]) -> None:
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def core_chain(app: WSGIApplication = bare_app, **guard: t.Any) -> WSGIApplication:
    """Extraction + Router + Guard, every request to the canary route, breaker closed; metrics off."""
    return Extraction(Router(app, all_canary(), apps={"canary": app}, guard=Guard(**guard)))


def unfused_core_chain(app: WSGIApplication = bare_app) -> WSGIApplication:
    """The core chain with a pass-through between Extraction and the Router: two pipelines, not one
    (what the stack cost before its layers fused, plus one do-nothing call)."""
    return Extraction(PassThrough(Router(app, all_canary(), apps={"canary": app}, guard=Guard())))


def light_core_chain(app: WSGIApplication = bare_app) -> WSGIApplication:
    """Extraction + CanarySplit + one breaker-window admit/record per request."""
    return Extraction(CanarySplit(WindowRecord(app), percent=15))


def evolution(app: WSGIApplication = bare_app) -> WSGIApplication:
    """ProtocolEvolution moving ``/v1/orders`` to ``/v2/orders``, in its compat stage."""
    from graywsgi.evolution.stages import Api, ProtocolEvolution

    return ProtocolEvolution(app, apis=[Api("orders", old="/v1/orders", new="/v2/orders", stage="compat")])


def metrics_on(app: WSGIApplication, port: int) -> WSGIApplication:
    from graywsgi.metrics.layer import Metrics

    return Metrics(app, port=port, tag_style="dogstatsd")


def full_chain(port: int, spec: Path) -> WithJSONBody:
    """Metrics + core chain + PreValidation (6 rules) of the bench's small JSON body."""
    from graywsgi.prevalidation.layer import PreValidation

    checked = PreValidation(bare_app, openapi=spec)
    return WithJSONBody(metrics_on(
        Extraction(Router(bare_app, all_canary(), apps={"canary": checked}, guard=Guard())), port
    ))


class Case(t.NamedTuple):
    app: WSGIApplication
    environ: WSGIEnvironment
    body: bytes | None = None  # a fresh io.BytesIO(body) per call when set
    group: str = "layers"


REFERENCE = "reference: header + FNV + context, hand-written"
FLASK = "Flask hello-world"
#: The issue's figures for its reference machine (µs): bare, Flask, the reference approximation.
ISSUE_FIGURES = {FLOOR: 0.23, FLASK: 44.0, REFERENCE: 1.3}
CORE_UNFUSED = "core chain, not fused (a pass-through between the layers)"
CORE_NO_RETRY = "core chain, Guard(retry_on_stable=False)"
EXTRACTION_FLASK = "Extraction + Flask hello-world"
CORE_FLASK = "core chain + Flask hello-world"
EVOLUTION_OTHER = "ProtocolEvolution, a path it does not manage"
EVOLUTION_OLD = "ProtocolEvolution, old API in compat (3 headers added)"
METRICS_ALONE = "Metrics alone (dogstatsd, UDP), no gray context"
FULL = "full chain: Metrics + core + PreValidation, JSON body"
FULL_FLOOR = "full chain's environ change alone (its floor)"
BR_OURS = "[breaker] graywsgi window admit + record"
BR_PEER = "[breaker] pybreaker CircuitBreaker.call"
SPLIT_OURS = "[split] graywsgi CanarySplit (context given)"
SPLIT_PEER = "[split] GrowthBook 15 % rollout"
SPLIT_FLOOR = "[split] context given, no split (floor)"


def all_cases(port: int, spec: Path, *, peers: bool = True) -> dict[str, Case]:
    environ = gray_environ()
    found: dict[str, Case] = {name: Case(app, environ) for name, app in cases().items()}
    old_api = dict(environ, PATH_INFO="/v1/orders/42")
    found[EVOLUTION_OTHER] = Case(evolution(), environ)
    found[EVOLUTION_OLD] = Case(evolution(), old_api)
    found[METRICS_ALONE] = Case(metrics_on(bare_app, port), environ)
    found[CORE] = Case(core_chain(), environ, group="chain")
    found[CORE_UNFUSED] = Case(unfused_core_chain(), environ, group="chain")
    found[CORE_NO_RETRY] = Case(core_chain(retry_on_stable=False), environ, group="chain")
    found["light core: Extraction + CanarySplit + window record"] = Case(light_core_chain(), environ, group="chain")
    found[FUSED] = Case(FusedFloor(bare_app), environ, group="chain")
    found[CORE_METRICS] = Case(metrics_on(core_chain(), port), environ, group="chain")
    found[FULL] = Case(full_chain(port, spec), environ, group="chain")
    found[FULL_FLOOR] = Case(WithJSONBody(bare_app), environ, group="chain")
    flask = flask_hello()
    found[IN_APP_FLOOR] = Case(Alongside(flask, bare_app), environ, group="chain")
    found[IN_APP_CORE] = Case(Alongside(flask, core_chain()), environ, group="chain")
    if peers:
        import prevalidation  # bench/prevalidation.py

        pv_environ = prevalidation.base_environ()
        for name, app in prevalidation.cases(spec).items():
            found[f"[pv] {name}"] = Case(app, pv_environ, prevalidation.BODY, group="peers")
        found[BR_OURS] = Case(WindowRecord(bare_app), environ, group="peers")
        found[BR_PEER] = Case(PyBreakerCall(bare_app), environ, group="peers")
        found[SPLIT_FLOOR] = Case(WithContext(bare_app), environ, group="peers")
        found[SPLIT_OURS] = Case(WithContext(CanarySplit(bare_app, percent=15)), environ, group="peers")
        found[SPLIT_PEER] = Case(WithContext(GrowthBookSplit(bare_app)), environ, group="peers")
    return found


def run_case(case: Case, loops: int) -> float:
    if case.body is None:
        return run_once(case.app, case.environ, loops)
    import prevalidation  # bench/prevalidation.py

    return prevalidation.run_once(case.app, case.environ, case.body, loops)


def calibrate_case(case: Case, target: float) -> int:
    loops = 10
    while True:
        elapsed = run_case(case, loops)
        if elapsed >= target / 4:
            return max(10, int(loops * target / elapsed))
        loops *= 4


def check_outcomes(port: int, spec: Path) -> None:
    """The full chain and both validators must accept the valid body and refuse the invalid one."""
    import prevalidation  # bench/prevalidation.py

    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> t.Callable[[bytes], object]:
        statuses.append(status.split()[0])
        return _write

    full = full_chain(port, spec)
    for body in (prevalidation.BODY, prevalidation.INVALID_BODY):
        full.body = body
        consume(full(gray_environ(), start_response))
    if statuses != ["200", "400"]:
        raise SystemExit(f"full chain: valid/invalid body -> {statuses}; expected 200 and 400")
    for name, app in prevalidation.cases(spec).items():
        if name in ("graywsgi PreValidation", "openapi-core, as middleware"):
            got = (prevalidation.status_of(app, prevalidation.BODY), prevalidation.status_of(app, prevalidation.INVALID_BODY))
            if got != ("201", "400"):
                raise SystemExit(f"{name}: valid/invalid -> {got}; expected 201 and 400")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_run(port: int, spec: Path, checkpoints: t.Sequence[int], warmup: int = 2_000) -> list[dict[str, float]]:
    """RSS and tracemalloc totals after each checkpoint's number of requests through the full chain."""
    import tracemalloc

    app = full_chain(port, spec)
    environ = gray_environ()
    run_once(app, environ, warmup)
    gc.collect()
    tracemalloc.start()
    try:
        rows = []
        done = 0

        def mark(requests: int) -> None:
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            rows.append({"requests": requests, "rss_kib": rss_kib(), "traced_kib": current / 1024,
                         "traced_peak_kib": peak / 1024, "blocks": sys.getallocatedblocks()})
            print(f"memory: {requests:,} requests, RSS {rows[-1]['rss_kib']:,} KiB,"
                  f" traced {rows[-1]['traced_kib']:,.1f} KiB", file=sys.stderr)

        mark(0)
        for checkpoint in sorted(checkpoints):
            run_once(app, environ, checkpoint - done)
            done = checkpoint
            mark(done)
    finally:
        tracemalloc.stop()
    return rows


def profile_core(requests: int, top: int = 18) -> None:
    import cProfile
    import pstats

    app = core_chain()
    environ = gray_environ()
    run_once(app, environ, 1_000)
    profiler = cProfile.Profile()
    profiler.enable()
    run_once(app, environ, requests)
    profiler.disable()
    print(f"cProfile of the core chain ({CORE}), {requests:,} requests, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def draw_plot(results: dict[str, dict[str, float]], path: str, main_path: str = "",
              chain: dict[str, dict[str, float]] | None = None) -> None:
    """Per-layer cost bars and rule scaling; the core chain's bars also for the
    other path in ``chain`` (path -> case -> median ns), when it was timed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = results[FLOOR]["median_ns"]
    layers = [
        ("pass-through layer", FLOOR),
        (REFERENCE, FLOOR),
        (FUSED, FLOOR),
        ("Extraction", FLOOR),
        ("Extraction + CanarySplit (chain so far)", FLOOR),
        ("light core: Extraction + CanarySplit + window record", FLOOR),
        (EVOLUTION_OTHER, FLOOR),
        (EVOLUTION_OLD, FLOOR),
        (METRICS_ALONE, FLOOR),
        (CORE, FLOOR),
        (CORE_UNFUSED, FLOOR),
        (CORE_NO_RETRY, FLOOR),
        (IN_APP_CORE, IN_APP_FLOOR),
        (CORE_METRICS, FLOOR),
        (FULL, FULL_FLOOR),
        (PV_OURS, PV_FLOOR),
        (PV_CORE, PV_FLOOR),
        (BR_OURS, FLOOR),
        (BR_PEER, FLOOR),
        (SPLIT_OURS, SPLIT_FLOOR),
        (SPLIT_PEER, SPLIT_FLOOR),
        (FLASK, FLOOR),
    ]
    layers = [(name, base) for name, base in layers if name in results and base in results]
    names = [f"{name} ({main_path})" if name in (CORE, CORE_UNFUSED, CORE_METRICS) and main_path else name
             for name, _ in layers]
    added = [max(results[name]["median_ns"] - results[base]["median_ns"], 1.0) / 1000 for name, base in layers]
    for other, med in (chain or {}).items():
        if other == main_path:
            continue
        for name in (CORE, CORE_UNFUSED, CORE_METRICS):
            names.append(f"{name} ({other})")
            added.append(max(med[name] - med[FLOOR], 1.0) / 1000)
    colors = ["#c0504d" if ("openapi" in n or "pybreaker" in n or "GrowthBook" in n or n == FLASK)
              else "#9a9a9a" if n in (REFERENCE, FUSED) else "#4f81bd" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6), gridspec_kw={"width_ratios": [2.2, 1]})
    left.barh(range(len(names)), added, color=colors)
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.axvline(2.5, color="#9a9a9a", linestyle="--", linewidth=1, label="core chain budget, 2.5 µs")
    left.legend(loc="lower right", fontsize=7)
    left.set_xlabel("µs per request over its floor (same-run medians, log scale); red = peers / Flask,"
                    " grey = not graywsgi (reference, fused floor)")
    left.set_title("Per-layer cost")
    for index, value in enumerate(added):
        left.text(value, index, f" {value:.1f}", va="center", fontsize=7)
    counts = [count for count in RULES if RULES[count] in results]
    scaling = [(results[RULES[c]]["median_ns"] - floor) / 1000 for c in counts]
    right.plot(counts, scaling, "o-")
    right.set_xscale("log")
    right.set_ylim(0, max(scaling) * 1.3)  # flat is the point: keep the line off the frame
    right.set_xlabel("host/prefix rules")
    right.set_ylabel("µs per request over the bare floor")
    right.set_title("Extraction + Router: rule scaling")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pin_to_one_cpu() -> set[int] | None:
    """Move this process onto one CPU (the last it may use); the CPUs it had, to restore.

    ``None`` where that is not possible (one CPU, or no ``sched_setaffinity``).
    On a shared machine the scheduler otherwise moves the loop between CPUs,
    and each move costs it warm caches.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(0, {max(cpus)})
    return cpus


def machine_line(results: dict[str, dict[str, float]]) -> str:
    """How this machine compares with the one the issue's reference figures came from."""
    floor = results[FLOOR]["median_ns"] / 1000
    parts = []
    for name, theirs in ISSUE_FIGURES.items():
        ours = results[name]["median_ns"] / 1000
        if name == REFERENCE:
            ours -= floor  # the issue quotes it as added work
        parts.append(f"{name.split(':')[0]} {ours:.2f} µs vs {theirs} µs (x{ours / theirs:.2f})")
    return "this machine vs the issue's reference figures: " + "; ".join(parts)


def table_script(argv: t.Sequence[str] | None, doc: str | None, run: t.Callable[..., dict[str, t.Any]],
                 table: t.Callable[[dict[str, t.Any]], str], repeat: int) -> int:
    """The command line of a small bench script (bench/exporters.py):
    ``--quick``, ``--repeat N`` (default ``repeat``), ``--json``; runs ``run`` and prints its table or JSON."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--repeat", type=positive(int), default=repeat)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, repeat=args.repeat, log=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def positive(kind: t.Callable[[str], t.Any]) -> t.Callable[[str], t.Any]:
    """An argparse type: ``kind(text)``, which must be > 0."""

    def parse(text: str) -> t.Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
        return value

    return parse


def memory_checkpoints(text: str) -> list[int]:
    """``--memory``: comma-separated request counts; 0 alone skips the memory run."""
    try:
        counts = [int(part.strip().replace("_", "")) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated request counts, got {text!r}") from None
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError(f"request counts must be >= 0, got {text!r}")
    return [count for count in counts if count > 0]


def path_in_use() -> str:
    """``compiled`` or ``pure Python``: which graywsgi this process runs (graywsgi.speedups)."""
    import graywsgi.speedups

    return budgets.COMPILED if graywsgi.speedups.compiled() else budgets.PURE


#: The cases the other path's process times (with its own floor).
CHAIN_CASES = (FLOOR, "pass-through layer", FUSED, CORE, CORE_UNFUSED, METRICS_ALONE, CORE_METRICS)


def time_cases(apps: dict[str, Case], repeat: int, target: float) -> dict[str, dict[str, float]]:
    """Median, spread and loops of each case, in ns per request (round-robin repetitions)."""
    loops_for = {name: calibrate_case(case, target) for name, case in apps.items()}
    # Repetitions go round-robin over the cases, so a noisy moment on the
    # shared machine hits every case alike and same-run ratios stay fair.
    samples_for: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(repeat):
        for name, case in apps.items():
            loops = loops_for[name]
            samples_for[name].append(run_case(case, loops) / loops * 1e9)
    results: dict[str, dict[str, float]] = {}
    for name, samples in samples_for.items():
        results[name] = {"median_ns": statistics.median(samples), "min_ns": min(samples), "max_ns": max(samples),
                         "loops": loops_for[name]}
    floor = results[FLOOR]["median_ns"]
    for row in results.values():
        row["ratio_to_floor"] = row["median_ns"] / floor
    return results


def other_path(args: argparse.Namespace, mode: str) -> tuple[str, dict[str, dict[str, float]] | None]:
    """The chain's cases timed by a second process running the other path: (its path, its results).

    ``None`` when that path is not available (no compiled fast path built).
    """
    import subprocess

    import graywsgi.speedups

    other = budgets.PURE if mode == budgets.COMPILED else budgets.COMPILED
    env = {**os.environ, graywsgi.speedups.PURE_PYTHON_ENV: "1" if other == budgets.PURE else ""}
    command = [sys.executable, __file__, "--only-chain", "--json", "--repeat", str(args.repeat),
               "--target", str(args.target), *(["--no-pin"] if args.no_pin else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the {other} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    if report["path"] != other:  # asked for the compiled path where none is built
        return other, None
    return other, report["cases"]


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=positive(int), default=7)
    parser.add_argument("--target", type=positive(float), default=0.5, help="seconds per repetition")
    parser.add_argument("--quick", action="store_true", help="everything tiny: a smoke run of a few seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--memory", type=memory_checkpoints, default=None,
                        help="comma-separated request counts for the memory run (0 = skip); "
                             "default 100000,1000000, --quick: 2000")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the in-process loop and the gunicorn A/B to the scheduler")
    parser.add_argument("--no-server", action="store_true",
                        help="skip the gunicorn A/B and the in-worker timing (bench/gunicorn_ab.py, bench/in_worker.py)")
    parser.add_argument("--no-peers", action="store_true", help="skip openapi-core, pybreaker and GrowthBook")
    parser.add_argument("--no-other-path", action="store_true",
                        help="time only the path this process runs (compiled or plain Python), not the other")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts (bench/callgrind.py)")
    parser.add_argument("--no-cold-cache", action="store_true",
                        help="skip the cold-cache miss counts (bench/cold_cache.py)")
    parser.add_argument("--plot", metavar="PATH", help="write the per-layer / rule-scaling plot (PNG or SVG)")
    parser.add_argument("--profile", type=positive(int), nargs="?", const=200_000, metavar="REQUESTS",
                        help="cProfile the core chain and exit")
    parser.add_argument("--only-chain", action="store_true", help=argparse.SUPPRESS)  # the other path's run
    args = parser.parse_args(argv)
    if args.profile:
        profile_core(args.profile)
        return 0
    if args.quick:
        args.repeat, args.target = 3, 0.01
    mode = path_in_use()
    checkpoints = args.memory if args.memory is not None else ([2000] if args.quick else [100_000, 1_000_000])
    from prevalidation import write_spec  # bench/prevalidation.py

    spec = write_spec()
    # Metrics sends one UDP datagram per request to this socket, bound here and never read.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    restore = None
    memory: list[dict[str, float]] = []
    try:
        restore = None if args.no_pin else pin_to_one_cpu()
        if args.only_chain:
            chain_apps = {name: case for name, case in all_cases(port, spec, peers=False).items() if name in CHAIN_CASES}
            print(json.dumps({"path": mode, "cases": time_cases(chain_apps, args.repeat, args.target)}))
            return 0
        check_outcomes(port, spec)
        results = time_cases(all_cases(port, spec, peers=not args.no_peers), args.repeat, args.target)
        print("timed cases done", file=sys.stderr)
        memory = memory_run(port, spec, checkpoints) if checkpoints else []
    finally:
        sink.close()
        if restore is not None:
            os.sched_setaffinity(0, restore)  # the gunicorn A/B pins its own processes
    other_mode, other_results = (None, None) if args.no_other_path else other_path(args, mode)
    medians = {name: row["median_ns"] for name, row in results.items()}
    chain: dict[str, dict[str, float]] = {mode: medians}
    if other_mode is not None and other_results is not None:
        chain[other_mode] = {name: row["median_ns"] for name, row in other_results.items()}
    import rule_scaling  # bench/rule_scaling.py

    scaling = rule_scaling.run(quick=args.quick, log=sys.stderr)
    import exporters  # bench/exporters.py

    backends = exporters.run(quick=args.quick, log=sys.stderr)
    server = in_worker = None
    if not args.no_server:
        import gunicorn_ab  # bench/gunicorn_ab.py
        import in_worker as in_worker_bench  # bench/in_worker.py

        gunicorn_ab.exit_on_sigterm()  # a stopped run still stops its servers
        server = gunicorn_ab.run(quick=args.quick, log=sys.stderr, pin=not args.no_pin, control=not args.quick,
                                 also=("fused",))
        in_worker = in_worker_bench.run(quick=args.quick, log=sys.stderr, pin=not args.no_pin)
    instructions = None
    if not args.no_callgrind:
        import callgrind  # bench/callgrind.py

        counted = callgrind.run(quick=args.quick, log=sys.stderr)
        instructions = counted["instructions"]
    cold = None
    if not args.no_cold_cache:
        import cold_cache  # bench/cold_cache.py

        cold = cold_cache.run(quick=args.quick, log=sys.stderr)
    if args.plot:
        draw_plot(results, args.plot, mode, chain)
    rows = budgets.budget_rows(medians, chain, memory, server, in_worker, instructions, main_path=mode,
                               scaling=scaling, cold=cold["added"] if cold else None)
    floor = results[FLOOR]["median_ns"]
    if args.json:
        print(json.dumps({
            "path": mode, "cases": results, "other_path": {"path": other_mode, "cases": other_results},
            "memory": memory, "server": server, "in_worker": in_worker, "instructions": instructions,
            "cold_cache": {k: v for k, v in cold.items() if k != "table"} if cold else None,
            "rule_scaling": scaling, "exporters": backends,
            "pinned": restore is not None,
            "budgets": [{"budget": b, "limit": lim, "measured": m, "pass": p} for b, lim, m, p in rows],
        }, indent=2))
        return 0
    print(f"graywsgi path timed in this process: {mode}")
    print(f"{'case':58} {'median ns':>10} {'spread ns':>17} {'x floor':>8}")
    for name, row in results.items():
        spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
        print(f"{name:58} {row['median_ns']:10.0f} {spread:>17} {row['ratio_to_floor']:8.2f}")
    if other_results is not None:
        print(f"\nthe same chain cases, {other_mode} (a second process, its own floor):")
        for name, row in other_results.items():
            spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
            print(f"{name:58} {row['median_ns']:10.0f} {spread:>17} {row['ratio_to_floor']:8.2f}")
    print(f"\nin-process loop {'pinned to one CPU' if restore is not None else 'not pinned'}")
    print(machine_line(results))
    for path, med in chain.items():
        fused, unfused = med[CORE] - med[FLOOR], med[CORE_UNFUSED] - med[FLOOR]
        passing = med["pass-through layer"] - med[FLOOR]
        print(f"{path}: core chain {fused:,.0f} ns over the floor fused, {unfused:,.0f} ns with a pass-through"
              f" ({passing:,.0f} ns of it) between the layers, so not fused")
    alone = results[CORE]["median_ns"] - floor
    company = results[IN_APP_CORE]["median_ns"] - results[IN_APP_FLOOR]["median_ns"]
    print(f"core chain: {alone:,.0f} ns over the bare floor alone, {company:,.0f} ns right after a Flask request"
          f" ({company / alone:.1f}x the same work alone)")
    print(f"Router with 10,000 rules / with 10 rules: {results[RULES[10_000]]['median_ns'] / results[RULES[10]]['median_ns']:.3f}"
          " (same-run medians)")
    if BR_OURS in results:
        for ours, peer, base in ((PV_OURS, PV_CORE, PV_FLOOR), (BR_OURS, BR_PEER, FLOOR), (SPLIT_OURS, SPLIT_PEER, SPLIT_FLOOR)):
            a = results[ours]["median_ns"] - results[base]["median_ns"]
            b = results[peer]["median_ns"] - results[base]["median_ns"]
            print(f"peer: {peer} {b:,.0f} ns vs {ours} {a:,.0f} ns over the same floor: {b / a:.1f}x")
    print()
    print(rule_scaling.table(scaling))
    print()
    print(exporters.table(backends))
    if memory:
        print(f"\nmemory, full chain, tracemalloc on ({'requests':>9} {'RSS KiB':>9} {'traced KiB':>11} {'peak KiB':>9} {'blocks':>9})")
        for row in memory:
            print(f"{'':33} {row['requests']:>9,.0f} {row['rss_kib']:>9,.0f} {row['traced_kib']:>11,.1f}"
                  f" {row['traced_peak_kib']:>9,.1f} {row['blocks']:>9,.0f}")
    for report in (server, in_worker):
        if report:
            print()
            print(report["table"])
    if instructions is not None:
        print()
        print(counted["table"])
    if cold is not None:
        print()
        print(cold["table"])
    print()
    print(budgets.summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
