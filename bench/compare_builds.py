"""Two checkouts of graywsgi, timed against each other: what a change bought.

Run from the repository root, with the other checkout built in place::

    git worktree add /tmp/before <commit>
    (cd /tmp/before && python setup.py build_ext --inplace)
    python bench/compare_builds.py /tmp/before .              # 7 pairs
    python bench/compare_builds.py /tmp/before . --pairs 15 --json

Timings from runs minutes apart on a shared machine cannot be compared;
this alternates them instead. Each *pair* runs each checkout's own
``bench/run.py --only-chain`` (the chain's cases, as the full run times the
other path's: pinned to one CPU, ``--rounds`` round-robin repetitions),
one after the other, which goes first alternating; graywsgi is imported
from that checkout (``PYTHONPATH``; checked). Of each process the core
chain and the core chain with Metrics are taken over that process's own
bare floor. The result is each checkout's median over the pairs and their
ratio (second / first); below 1, the second is cheaper.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import typing as t
from pathlib import Path

import run  # bench/run.py: the case names
from gunicorn_ab import (
    positive_int,  # bench/gunicorn_ab.py's: an int > 0, or a clear error
)

#: The cases compared, over the bare floor.
CASES = ("core chain", "core chain + Metrics")
#: Their names in ``bench/run.py --only-chain``'s report.
REPORTED = {"core chain": run.CORE, "core chain + Metrics": run.CORE_METRICS}


def measure(root: Path, rounds: int, target: float, timeout: float) -> dict[str, float]:
    """One process on ``root``'s checkout: each case's ns over its floor."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    found = subprocess.run([sys.executable, "-c", "import graywsgi; print(graywsgi.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False)
    if not found.stdout.startswith(str(root / "graywsgi")):
        raise RuntimeError(f"graywsgi is not imported from {root}: {found.stdout.strip() or found.stderr[-500:]}")
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "run.py"), "--only-chain", "--json", "--repeat", str(rounds),
         "--target", str(target)],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the run on {root} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cases = json.loads(done.stdout)["cases"]
    floor = cases[run.FLOOR]["median_ns"]
    return {case: cases[name]["median_ns"] - floor for case, name in REPORTED.items()}


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
