"""Instructions per request, counted by valgrind's callgrind: the core chain beside the bare floor.

Run from the repository root (``valgrind`` is a Debian package)::

    python bench/callgrind.py            # compiled and plain Python, 2,000 and 12,000 requests
    python bench/callgrind.py --quick    # the compiled path only, 200 and 1,200 requests (smoke run)

Timings move with whatever else the machine is doing; instruction counts do
not: the same program with the same input executes the same instructions
(callgrind counts user-space instructions; the kernel's work -- the
``sendto`` of a Metrics datagram -- is not in them). Each case runs in a
fresh Python under ``valgrind --tool=callgrind`` twice, with N1 and then N2
requests after the same warm-up, and the cost of one request is the
difference of the two totals divided by N2 - N1: Python's start-up, the
imports and the warm-up cancel out. The cases are the ones ``bench/run.py``
times -- the bare WSGI callable (the floor), the core chain (Extraction +
Router + Guard, every request to the canary route, metrics off) and the
core chain with Metrics -- each with the compiled fast path and as plain
Python (``GRAYWSGI_PURE_PYTHON=1``). Every valgrind run is bounded by a
timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

#: Case name -> how bench/run.py builds it (see child()).
CASES = {
    "bare WSGI (floor)": "floor",
    "core chain: Extraction + Router + Guard, metrics off": "core",
    "core chain + Metrics (dogstatsd, UDP)": "metrics",
}
#: Mode -> GRAYWSGI_PURE_PYTHON for the child ("" runs the compiled modules).
MODES = {"compiled": "", "pure Python": "1"}
WARMUP = 200


def child(case: str, requests: int) -> None:
    """Build ``case`` and serve it ``WARMUP`` then ``requests`` requests (what valgrind counts)."""
    import run  # bench/run.py

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # Metrics' datagrams go here, never read
    sink.bind(("127.0.0.1", 0))
    builders: dict[str, t.Callable[[], t.Any]] = {
        "floor": lambda: run.bare_app,
        "core": run.core_chain,
        "metrics": lambda: run.metrics_on(run.core_chain(), sink.getsockname()[1]),
    }
    app = builders[case]()
    environ = run.gray_environ()
    run.run_once(app, environ, WARMUP)
    run.run_once(app, environ, requests)
    sink.close()


def count(case: str, requests: int, pure: str, timeout: float) -> int:
    """Instructions valgrind counted for one child run (``pure``: the value of GRAYWSGI_PURE_PYTHON)."""
    return collected([__file__, "--child", case, str(requests)], case, timeout, {"GRAYWSGI_PURE_PYTHON": pure})


def collected(arguments: t.Sequence[str], what: str, timeout: float, env: t.Mapping[str, str] | None = None) -> int:
    """Instructions callgrind counted in ``python <arguments>``, run from the
    repository root with ``env`` added to this process's environment;
    ``what`` names the run in an error."""
    # -B: no .pyc is written, so a module whose .pyc is missing or stale is
    # compiled in both runs of a pair alike (written by the first, it would
    # count in that run only: millions of instructions).
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-B", *arguments]
    # A fixed hash seed: with a random one, dict and set layouts (and so the
    # instructions spent probing them) differ from one run to the next.
    full_env = {**os.environ, **(env or {}), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"valgrind run of {what} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if not found:
        raise RuntimeError(f"no instruction count in valgrind's output for {what}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def compiled_path_built() -> bool:
    """Whether this checkout's fast path is compiled (bench/run.py reports the same)."""
    probe = subprocess.run([sys.executable, "-c", "import graywsgi.speedups as s; print(s.compiled())"],
                           cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "GRAYWSGI_PURE_PYTHON"},
                           capture_output=True, text=True, timeout=120)
    return probe.stdout.strip() == "True"


def check_runs(first: int, second: int, tools: t.Sequence[str] = ("valgrind",)) -> None:
    """Refuse before anything runs: a valgrind tool missing (:class:`RuntimeError`),
    or a second run that serves no more requests than the first (:class:`ValueError`);
    the per-request figure is the difference of the two over ``second - first``."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: apt-get install valgrind)")
    if second <= first:
        raise ValueError(f"the second run must serve more requests than the first ({first} >= {second})")


def run(*, quick: bool = False, first: int | None = None, second: int | None = None,
        log: t.TextIO | None = None, timeout: float = 600.0) -> dict[str, t.Any]:
    """Instructions per request for every case and mode; see the module docs."""
    first = first or (200 if quick else 2_000)
    second = second or (1_200 if quick else 12_000)
    check_runs(first, second)
    modes = dict(MODES)
    if not compiled_path_built():
        del modes["compiled"]
    if quick and "compiled" in modes:
        modes = {"compiled": modes["compiled"]}
    cases = {name: CASES[name] for name in list(CASES)[:2]} if quick else dict(CASES)
    per_request: dict[str, dict[str, int]] = {mode: {} for mode in modes}
    for mode, pure in modes.items():
        for name, case in cases.items():
            low = count(case, first, pure, timeout)
            high = count(case, second, pure, timeout)
            per_request[mode][name] = round((high - low) / (second - first))
            if log:
                print(f"callgrind, {mode}, {name}: {per_request[mode][name]:,} instructions per request", file=log)
    floor = list(cases)[0]
    lines = [f"instructions per request (valgrind --tool=callgrind; runs of {first:,} and {second:,} requests)",
             f"{'case':54} " + " ".join(f"{mode:>12}" for mode in modes)]
    for name in cases:
        lines.append(f"{name:54} " + " ".join(f"{per_request[mode][name]:12,}" for mode in modes))
    for name in list(cases)[1:]:
        lines.append(f"{name.split(':')[0] + ' / floor':54} "
                     + " ".join(f"{per_request[mode][name] / per_request[mode][floor]:11.1f}x" for mode in modes))
    return {"requests": [first, second], "instructions": per_request, "table": "\n".join(lines)}


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the compiled path only, fewer requests")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, requests = args.child
        if case not in CASES.values() or not requests.isdigit():
            parser.error(f"--child takes one of {sorted(CASES.values())} and a number of requests")
        child(case, int(requests))
        return 0
    result = run(quick=args.quick, log=sys.stderr)
    print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2) if args.json else result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
