"""Two checkouts of graywsgi, timed against each other: what a change bought.

Run from the repository root, with the other checkout built in place::

    git worktree add /tmp/before <commit>
    (cd /tmp/before && python setup.py build_ext --inplace)
    python bench/compare_builds.py /tmp/before .              # 7 pairs
    python bench/compare_builds.py /tmp/before . --pairs 15 --json

Timings from runs minutes apart on a shared machine cannot be compared;
this alternates them instead. Each *pair* runs one fresh Python per
checkout, one after the other (which goes first alternates): each process
imports graywsgi from its checkout (checked), builds ``bench/run.py``'s
cases -- the bare WSGI callable, the core chain, the core chain with
Metrics sending to a UDP socket bound here -- pins itself to one CPU, and
times ``--rounds`` round-robin rounds of each, reporting the median of
each case over its own bare floor. The result is each checkout's median
over the pairs and their ratio (second / first); below 1, the second is
cheaper. Both checkouts run with this Python and their own ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import typing as t
from pathlib import Path

from gunicorn_ab import positive_int  # bench/gunicorn_ab.py's: an int > 0, or a clear error

#: What each child prints: the cases over the bare floor, in ns.
CASES = ("core chain", "core chain + Metrics")

CHILD = r"""
import gc, json, socket, statistics, sys
root, rounds, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sys.path[:0] = [root, root + "/bench"]
import graywsgi, run
if not graywsgi.__file__.startswith(root):
    raise SystemExit(f"graywsgi came from {graywsgi.__file__}, not from {root}")
run.pin_to_one_cpu()
environ = run.gray_environ()
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # Metrics' datagrams go here, never read
sink.bind(("127.0.0.1", 0))
apps = {"bare": run.bare_app, "core chain": run.core_chain(),
        "core chain + Metrics": run.metrics_on(run.core_chain(), sink.getsockname()[1])}
loops = {name: run.calibrate(app, environ, target) for name, app in apps.items()}
times = {name: [] for name in apps}
gc.disable()
for _ in range(rounds):
    for name, app in apps.items():
        times[name].append(run.run_once(app, environ, loops[name]) / loops[name] * 1e9)
floor = statistics.median(times["bare"])
print(json.dumps({name: statistics.median(times[name]) - floor for name in apps if name != "bare"}))
sink.close()
"""


def measure(root: Path, rounds: int, target: float, timeout: float) -> dict[str, float]:
    """One process on ``root``'s checkout: each case's ns over its floor."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(rounds), str(target)],
        cwd=root, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the run on {root} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return t.cast(dict[str, float], json.loads(done.stdout.strip().splitlines()[-1]))


def compare(first: Path, second: Path, *, pairs: int = 7, rounds: int = 7, target: float = 0.1,
            timeout: float = 600.0) -> dict[str, t.Any]:
    """Alternate ``pairs`` runs of the two checkouts; medians and ratios."""
    found: dict[str, dict[str, list[float]]] = {"first": {c: [] for c in CASES}, "second": {c: [] for c in CASES}}
    for index in range(pairs):
        order = [("first", first), ("second", second)]
        for label, root in order if index % 2 == 0 else order[::-1]:
            for case, nanoseconds in measure(root, rounds, target, timeout).items():
                found[label][case].append(nanoseconds)
    medians = {label: {case: statistics.median(values) for case, values in cases.items()}
               for label, cases in found.items()}
    return {
        "first": str(first), "second": str(second), "pairs": pairs, "rounds": rounds,
        "medians_ns": medians,
        "ratio": {case: medians["second"][case] / medians["first"][case] for case in CASES},
        "runs_ns": found,
    }


def table(result: dict[str, t.Any]) -> str:
    lines = [(f"median over {result['pairs']} alternating pairs of processes ({result['rounds']} rounds each), "
              "ns over each process's bare floor"),
             f"{'case':24} {'first':>10} {'second':>10} {'second/first':>13}"]
    for case in CASES:
        lines.append(f"{case:24} {result['medians_ns']['first'][case]:10,.0f} "
                     f"{result['medians_ns']['second'][case]:10,.0f} {result['ratio'][case]:13.3f}")
    lines.append(f"first: {result['first']}\nsecond: {result['second']}")
    return "\n".join(lines)


def checkout(text: str) -> Path:
    root = Path(text).resolve()
    if not (root / "graywsgi" / "__init__.py").is_file() or not (root / "bench" / "run.py").is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a graywsgi checkout (no graywsgi/__init__.py or bench/run.py)")
    return root


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=checkout, help="the checkout to compare with (built in place)")
    parser.add_argument("second", type=checkout, help="the checkout under test (built in place)")
    parser.add_argument("--pairs", type=positive_int, default=7, help="alternating pairs of processes (default 7)")
    parser.add_argument("--rounds", type=positive_int, default=7, help="round-robin rounds per process (default 7)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = compare(args.first, args.second, pairs=args.pairs, rounds=args.rounds)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
