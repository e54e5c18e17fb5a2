"""What the Metrics middleware costs per request: the core chain with metrics on and off.

Run from the repository root::

    python bench/metrics.py            # about a minute
    python bench/metrics.py --quick    # smoke run

Same method as ``bench/run.py`` (whose helpers it uses): one environ, a
fresh shallow copy per call, the response consumed and closed; calibrated
loops, repetitions round-robin over the cases, medians and spread in ns.
The figure that matters is the same-run ratio *metrics on / metrics off*
for each chain; compare ratios from one run, never absolute times across
runs. By default the loops are timed in process CPU time (``--clock
wall`` for elapsed time): on a shared, loaded machine elapsed time mostly
measures the other work.

"On" sends one real UDP datagram per request to a socket bound on
127.0.0.1 in this process (never read, so the kernel drops what overflows
its buffer: the sender does not notice, as with a real statsd server). The
"formatting only" case swaps the socket for a sink that discards the lines,
to split the cost between building the lines and the ``sendto`` system call.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _start_response, bare_app, gray_environ  # noqa: E402

from graywsgi import CanarySplit, Extraction, Router  # noqa: E402
from graywsgi.layers.guard import Guard  # noqa: E402
from graywsgi.metrics.layer import Metrics, StatsdSink  # noqa: E402
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet  # noqa: E402

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class DiscardingSink(StatsdSink):
    """Sends nothing: the lines are built and thrown away."""

    def send(self, lines: t.Sequence[str]) -> None:
        return None


def core_chain() -> WSGIApplication:
    """Extraction + Router + Guard on a canary route (breaker closed): the DESIGN's core chain."""
    rules = RuleSet(
        clusters={"stable": Cluster(), "canary": Cluster()},
        rules=(Rule(name="half", split=(Backend("canary", 50),)),),
    )
    return Extraction(Router(bare_app, rules, apps={"canary": bare_app}, guard=Guard()))


def split_chain() -> WSGIApplication:
    return Extraction(CanarySplit(bare_app, percent=15))


def cases(port: int) -> dict[str, WSGIApplication]:
    def on(app: WSGIApplication, style: str = "dogstatsd") -> Metrics:
        return Metrics(app, port=port, tag_style=style)

    return {
        "bare WSGI (floor)": bare_app,
        "split chain, metrics off": split_chain(),
        "split chain + Metrics (statsd, UDP)": on(split_chain(), "statsd"),
        "split chain + Metrics (dogstatsd, UDP)": on(split_chain()),
        "split chain + Metrics (influx, UDP)": on(split_chain(), "influx"),
        "split chain + Metrics (formatting only)": Metrics(split_chain(), sink=DiscardingSink(), tag_style="dogstatsd"),
        "core chain (Router + Guard), metrics off": core_chain(),
        "core chain (Router + Guard) + Metrics (dogstatsd, UDP)": on(core_chain()),
        "Metrics alone over bare WSGI (dogstatsd, UDP)": on(bare_app),
    }


CLOCKS: dict[str, t.Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def run_once(app: WSGIApplication, environ: t.Any, loops: int, clock: t.Callable[[], float]) -> float:
    """As ``run.run_once``, timed by ``clock``."""
    copy = dict.copy
    start = clock()
    for _ in range(loops):
        result = app(copy(environ), _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return clock() - start


def calibrate(app: WSGIApplication, environ: t.Any, target: float, clock: t.Callable[[], float]) -> int:
    loops = 100
    while True:
        elapsed = run_once(app, environ, loops, clock)
        if elapsed >= target / 4:
            return max(100, int(loops * target / elapsed))
        loops *= 4


RATIOS = [
    ("split chain + Metrics (dogstatsd, UDP)", "split chain, metrics off"),
    ("split chain + Metrics (statsd, UDP)", "split chain, metrics off"),
    ("split chain + Metrics (influx, UDP)", "split chain, metrics off"),
    ("split chain + Metrics (formatting only)", "split chain, metrics off"),
    ("core chain (Router + Guard) + Metrics (dogstatsd, UDP)", "core chain (Router + Guard), metrics off"),
]


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.5, help="seconds per repetition")
    parser.add_argument("--quick", action="store_true", help="3 short repetitions (smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu (default): this process's CPU time, which leaves out the time other work on a"
        " shared machine holds the CPU; wall: elapsed time, as bench/run.py",
    )
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    if args.quick:
        args.repeat, args.target = 3, 0.02
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    try:
        environ = gray_environ()
        apps = cases(server.getsockname()[1])
        loops_for = {name: calibrate(app, environ, args.target, clock) for name, app in apps.items()}
        samples_for: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.repeat):
            for name, app in apps.items():
                loops = loops_for[name]
                samples_for[name].append(run_once(app, environ, loops, clock) / loops * 1e9)
    finally:
        server.close()
    results = {
        name: {
            "median_ns": statistics.median(samples),
            "min_ns": min(samples),
            "max_ns": max(samples),
            "loops": loops_for[name],
        }
        for name, samples in samples_for.items()
    }
    ratios = {
        f"{on} / {off}": {
            "ratio": results[on]["median_ns"] / results[off]["median_ns"],
            "added_ns": results[on]["median_ns"] - results[off]["median_ns"],
        }
        for on, off in RATIOS
    }
    if args.json:
        print(json.dumps({"clock": args.clock, "cases": results, "ratios": ratios}, indent=2))
        return 0
    print(f"{'case':55} {'median ns':>10} {'spread ns':>17}   ({args.clock} time)")
    for name, row in results.items():
        spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
        print(f"{name:55} {row['median_ns']:10.0f} {spread:>17}")
    print("\nmetrics on / off (same-run medians):")
    for name, row in ratios.items():
        print(f"  {name}: {row['ratio']:.2f}x, +{row['added_ns']:.0f} ns per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
