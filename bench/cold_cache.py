"""Cache misses per request when every request starts with cold caches: the core chain beside the bare floor.

Run from the repository root (``valgrind`` is a Debian package)::

    python bench/cold_cache.py            # compiled and plain Python, 100 and 400 requests
    python bench/cold_cache.py --quick    # the compiled path only, 30 and 90 requests (smoke run)
    python bench/cold_cache.py --functions 25          # ... and the 25 functions that add the most misses
    python bench/cold_cache.py --timed                 # the same loop timed, no valgrind
    python bench/cold_cache.py --timed --idle-us 500   # ... with 0.5 ms asleep before each request

``bench/callgrind.py`` counts what the chain executes; this counts what it
has to fetch. In process, the benchmark loop serves the same request again
and again, so the chain's code and data stay in the CPU's caches; inside a
gunicorn worker every request follows the kernel's socket work, gunicorn's
HTTP parsing and the application, which push them out, and the chain costs
several times its in-process figure (``bench/in_worker.py``). This script
gives that cost a measure that does not move with the machine's load:
valgrind's cachegrind simulates a CPU's caches (first-level instruction and
data caches of 32 KiB, 8-way, and a 512 KiB 8-way second level -- the
sizes of the AMD and Intel server cores this benchmark has run on) and
counts the misses. Before each request the child serves one Flask
hello-world request (which evicts the first-level caches, as an
application does) and reads one byte of every cache line of a 1 MiB buffer
(which evicts the second level). A second-level miss is a line fetched
from the shared L3 or memory: the chain's cold cost is about its misses
times that latency.

Each case runs in a fresh Python twice, with N1 and N2 requests after the
same warm-up, and the cost of one request is the difference of the two
totals divided by N2 - N1, as ``bench/callgrind.py`` does (the cyclic
garbage collector off for the counted requests: Flask leaves cycles, and a
collection landing in one run only would skew the difference); the polluting
work is the same in every case, so the chain's figure minus the floor's is
what the chain adds. The split names the misses taken in graywsgi's
compiled code (its functions, with what the C compiler inlined into them)
apart from the rest (CPython, the C library). Every valgrind run is bounded
by a timeout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import callgrind  # bench/callgrind.py: the cases, the modes and the compiled-path check
from gunicorn_ab import positive_int  # bench/gunicorn_ab.py

#: Case name -> how bench/run.py builds it: the floor and the core chain.
CASES = dict(list(callgrind.CASES.items())[:2])
#: Requests served before the counted ones (the caches the chain keeps, warm).
WARMUP = 100
#: Bytes read between requests, one per cache line: twice the simulated second level.
SWEEP = 1 << 20
#: The simulated caches: size, associativity, line size.
CACHES = {"I1": (32_768, 8, 64), "D1": (32_768, 8, 64), "LL": (524_288, 8, 64)}
#: What cachegrind's summary names -> the key this script reports it as.
EVENTS = {"I   refs": "instructions", "I1  misses": "L1i misses", "D1  misses": "L1d misses",
          "LLi misses": "L2 misses, code", "LLd misses": "L2 misses, data"}
#: A function of graywsgi's compiled modules, as Cython names it in the C code.
OWN = re.compile(r"__pyx_|__Pyx_")


def build(case: str) -> t.Any:
    """The WSGI application of ``case`` (a value of :data:`CASES`), as bench/run.py builds it."""
    import run  # bench/run.py

    return run.bare_app if case == "floor" else run.core_chain()


def cooler(sweep_bytes: int, idle_us: int = 0) -> t.Callable[[], None]:
    """What runs before each request: a Flask hello-world request, one byte
    read from every cache line of a ``sweep_bytes`` buffer, ``idle_us`` µs asleep."""
    import time

    import ab_app  # bench/ab_app.py: the Flask hello-world
    import run  # bench/run.py

    flask = ab_app.hello()
    environ = run.gray_environ()
    sweep = bytearray(sweep_bytes)

    def cool() -> None:
        run.run_once(flask, environ, 1)
        sweep[::64]  # one byte of every cache line
        if idle_us:
            time.sleep(idle_us / 1e6)

    return cool


def child(case: str, requests: int, warmup: int = WARMUP) -> None:
    """Serve ``case`` ``warmup`` then ``requests`` requests, each after a Flask request and a sweep."""
    import run  # bench/run.py

    app = build(case)
    environ = run.gray_environ()
    cool = cooler(SWEEP)

    def serve(count: int) -> None:
        for _ in range(count):
            cool()
            run.run_once(app, environ, 1)

    serve(warmup)
    # Flask leaves reference cycles behind: with the collector on, a
    # collection lands in one of the two runs and not the other, and moves
    # the difference by thousands of instructions. Off for the counted part,
    # in every case alike.
    gc.collect()
    gc.disable()
    serve(requests)


def timed(*, rounds: int = 9, requests: int = 2_000, sweep_mib: int = 1, idle_us: int = 0,
          log: t.TextIO | None = None) -> dict[str, t.Any]:
    """The child's loop timed in this process, without valgrind: for each
    case the median of one request's time (its call, body and close) after
    a Flask request, a ``sweep_mib`` MiB sweep and ``idle_us`` µs asleep.
    Rounds alternate the cases; the loop runs on one CPU where it can (as
    bench/run.py's does). The real caches are not the simulated ones: a
    sweep of 1 MiB leaves most lines in a large L2 or the L3. A worker
    waiting for its next connection sleeps in the kernel; an idle gap lets
    the host's other work take the caches, as it does then."""
    import statistics

    import run  # bench/run.py

    apps = {name: build(case) for name, case in CASES.items()}
    environ = run.gray_environ()
    cool = cooler(sweep_mib << 20, idle_us)
    restore = run.pin_to_one_cpu()
    medians: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for index in range(rounds + 1):  # the first round warms up
            for name, app in apps.items():
                times = []
                for _ in range(requests):
                    cool()
                    times.append(run.run_once(app, environ, 1))
                if index:
                    medians[name].append(statistics.median(times) * 1e9)
                    if log:
                        print(f"cold cache, timed, {name}: {medians[name][-1]:,.0f} ns", file=log)
    finally:
        if restore is not None:
            os.sched_setaffinity(0, restore)
    floor, core = CASES
    result = {name: statistics.median(values) for name, values in medians.items()}
    added = result[core] - result[floor]
    asleep = f", then {idle_us} µs asleep" if idle_us else ""
    table = (f"timed in process ({rounds} rounds of {requests:,} requests, each after a Flask request and a"
             f" {sweep_mib} MiB sweep{asleep}): floor {result[floor]:,.0f} ns, core chain {result[core]:,.0f} ns;"
             f" the chain adds {added:,.0f} ns")
    return {"sweep_mib": sweep_mib, "idle_us": idle_us, "rounds": rounds, "requests": requests,
            "median_ns": result, "added_ns": added, "table": table}


def simulate(case: str, requests: int, warmup: int, pure: str,
             timeout: float) -> tuple[dict[str, int], dict[str, int]]:
    """Cachegrind's totals for one child run (with the misses in graywsgi's
    own code), and the L2 misses of each function."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cachegrind.out"
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}",
            *(f"--{name}={size},{ways},{line}" for name, (size, ways, line) in CACHES.items()),
            sys.executable, __file__, "--child", case, str(requests), str(warmup),
        ]
        env = {**os.environ, "GRAYWSGI_PURE_PYTHON": pure, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"valgrind run of {case} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        totals = {}
        for event, key in EVENTS.items():
            found = re.search(rf"{re.escape(event)}:\s*([\d,]+)", done.stderr)
            if not found:
                raise RuntimeError(f"no {event!r} in valgrind's output for {case}:\n{done.stderr[-2000:]}")
            totals[key] = int(found.group(1).replace(",", ""))
        functions = function_misses(out, timeout)
    totals["L2 misses in graywsgi's code"] = sum(count for name, count in functions.items() if OWN.search(name))
    return totals, functions


def function_misses(out: Path, timeout: float) -> dict[str, int]:
    """Second-level misses (code and data) by function; code the C compiler
    inlined from a header is counted with the function it was inlined into."""
    annotated = subprocess.run(
        ["cg_annotate", "--auto=no", "--threshold=0", "--show=ILmr,DLmr,DLmw", str(out)],
        capture_output=True, text=True, timeout=timeout, check=True,
    ).stdout
    misses: dict[str, int] = {}
    for line in annotated.splitlines():
        row = re.match(r"\s*([\d,]+)(?: \([\s\d.]+%\))?\s+([\d,]+)(?: \([\s\d.]+%\))?\s+([\d,]+)(?: \([\s\d.]+%\))?\s+(\S.*)$",
                       line)
        if row and "PROGRAM TOTALS" not in line:
            name = row.group(4).split(" [", 1)[0].rsplit(":", 1)[-1]
            misses[name] = misses.get(name, 0) + sum(int(row.group(i).replace(",", "")) for i in (1, 2, 3))
    return misses


def readable(function: str) -> str:
    """``graywsgi.layers.identifiers.IdentifierReader_parse`` for Cython's
    ``__pyx_f_8graywsgi_6layers_11identifiers_16IdentifierReader_parse``
    (length-prefixed module path, then the name); other names unchanged.
    A Python-visible wrapper (``pw``, ``pf``) ends in its index and name
    instead (``__pyx_pw_8graywsgi_6layers_5scope_3_close``: ``_close``)."""
    found = re.match(r"__pyx_([a-z]+(?:_[a-z]+)*)_(?=\d)", function)
    if not found:
        return function
    kind, rest = found.group(1), function[found.end():]
    final = None
    if kind in ("pw", "pf"):
        last = re.search(r"_(\d+)(\D(?:(?!_\d)\w)*)$", rest)  # the index, then a name with no "_<digit>"
        if last:
            rest, final = rest[:last.start()], last.group(2)
    parts = []
    while rest[:1].isdigit():
        digits = re.match(r"\d+", rest).group()  # type: ignore[union-attr]  # rest starts with a digit
        size = int(digits)
        parts.append(rest[len(digits):len(digits) + size])
        rest = rest[len(digits) + size:].removeprefix("_")  # the separator, not a name's own underscore
    names = [*parts, rest] if rest else parts
    if final is not None:
        names.append(final)
    dotted = ".".join(names)
    return dotted if kind == "f" else f"{dotted} ({kind})"


def run(*, quick: bool = False, first: int | None = None, second: int | None = None,
        log: t.TextIO | None = None, timeout: float = 900.0, functions: int = 0) -> dict[str, t.Any]:
    """Misses per request for every case and mode; see the module docs.

    :param functions: also list this many functions with the most L2
        misses the chain adds (its misses there minus the floor's).
    """
    first = first or (30 if quick else 100)
    second = second or (90 if quick else 400)
    callgrind.check_runs(first, second, ("valgrind", "cg_annotate"))
    warmup = 30 if quick else WARMUP
    modes = dict(callgrind.MODES)
    if not callgrind.compiled_path_built():
        del modes["compiled"]
    if quick and "compiled" in modes:
        modes = {"compiled": modes["compiled"]}
    per_request: dict[str, dict[str, dict[str, float]]] = {mode: {} for mode in modes}
    by_function: dict[str, dict[str, dict[str, float]]] = {mode: {} for mode in modes}
    for mode, pure in modes.items():
        for name, case in CASES.items():
            low, low_functions = simulate(case, first, warmup, pure, timeout)
            high, high_functions = simulate(case, second, warmup, pure, timeout)
            per_request[mode][name] = {key: (high[key] - low[key]) / (second - first) for key in low}
            by_function[mode][name] = {
                function: (high_functions.get(function, 0) - low_functions.get(function, 0)) / (second - first)
                for function in {*low_functions, *high_functions}
            }
            if log:
                print(f"cold cache, {mode}, {name}: {per_request[mode][name]}", file=log)
    floor, core = CASES
    added = {mode: {key: cases[core][key] - cases[floor][key] for key in cases[core]}
             for mode, cases in per_request.items()}
    top: dict[str, list[tuple[str, float]]] = {}
    if functions:
        for mode, cases in by_function.items():
            diff = {function: count - cases[floor].get(function, 0) for function, count in cases[core].items()}
            top[mode] = [(readable(function), count)
                         for function, count in sorted(diff.items(), key=lambda item: -item[1])[:functions]]
    text = table(added, first, second)
    for mode, rows in top.items():
        text += f"\n\nthe {len(rows)} functions with the most L2 misses the chain adds, {mode}:\n" + "\n".join(
            f"{count:10,.1f}  {function}" for function, count in rows)
    return {"requests": [first, second], "warmup": warmup, "caches": CACHES, "sweep_bytes": SWEEP,
            "per_request": per_request, "added": added, "functions": top, "table": text}


def table(added: dict[str, dict[str, float]], first: int, second: int) -> str:
    lines = [(f"what the core chain adds per request with cold caches (valgrind --tool=cachegrind, simulated"
              f" L1 32 KiB, L2 512 KiB; runs of {first:,} and {second:,} requests, each after a Flask request"
              f" and a 1 MiB sweep)"),
             f"{'':34} " + " ".join(f"{mode:>12}" for mode in added)]
    for key in [*EVENTS.values(), "L2 misses in graywsgi's code"]:
        lines.append(f"{key:34} " + " ".join(f"{added[mode][key]:12,.0f}" for mode in added))
    lines.append(f"{'L2 misses in all':34} " + " ".join(
        f"{added[mode]['L2 misses, code'] + added[mode]['L2 misses, data']:12,.0f}" for mode in added))
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the compiled path only, fewer requests")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timed", action="store_true",
                        help="time the same loop in this process instead (no valgrind): what the misses cost here")
    parser.add_argument("--sweep-mib", type=positive_int, help="with --timed: MiB swept before each request (default 1)")
    parser.add_argument("--idle-us", type=positive_int, help="with --timed: µs asleep before each request")
    parser.add_argument("--functions", type=positive_int, metavar="N",
                        help="also list the N functions with the most L2 misses the chain adds")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "REQUESTS", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, requests, warmup = args.child
        if case not in CASES.values() or not requests.isdigit() or not warmup.isdigit():
            parser.error(f"--child takes one of {sorted(CASES.values())} and two numbers of requests")
        child(case, int(requests), int(warmup))
        return 0
    if not args.timed and (args.sweep_mib or args.idle_us):
        parser.error("--sweep-mib and --idle-us go with --timed (the simulated caches are fixed)")
    if args.timed and args.functions:
        parser.error("--functions goes with the simulated run, not --timed")
    if args.timed:
        result = timed(rounds=3 if args.quick else 9, requests=200 if args.quick else 2_000,
                       sweep_mib=args.sweep_mib or 1, idle_us=args.idle_us or 0, log=sys.stderr)
    else:
        result = run(quick=args.quick, log=sys.stderr, functions=args.functions or 0)
    print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2) if args.json else result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
