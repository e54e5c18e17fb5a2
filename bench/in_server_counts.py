"""Instructions and cache misses per request inside a real gunicorn worker: the core chain beside lean middleware.

Run from the repository root (``valgrind`` is a Debian package; gunicorn and
Flask are dev dependencies)::

    python bench/in_server_counts.py            # 400 and 800 requests for plain, chained, fused, reference
    python bench/in_server_counts.py --quick    # 50 and 150 requests for plain and chained (smoke run)
    python bench/in_server_counts.py --functions 20   # ... and the chain's 20 functions with the most L1i misses
    python bench/in_server_counts.py --worker-class gthread   # the same in a gthread worker (4 threads)
    python bench/in_server_counts.py --over-plain 20  # ... and the 20 functions anywhere the chain adds misses to most

``bench/gunicorn_ab.py`` measures what the chain costs a gunicorn worker in
requests per second, and its rounds move by several points with the
machine's load. This counts the same thing with valgrind, which does not
move: each application of ``bench/ab_app.py`` -- the Flask hello-world
alone (``plain``), behind the core chain (``chained``), behind the
hand-written fused floor (``fused``, a subset of the chain's work in plain
Python) and behind the issue's reference middleware (``reference``) -- is
served by a gunicorn ``sync`` worker (``--worker-class gthread``: a
``gthread`` worker with 4 threads, as ``bench/gunicorn_ab.py`` runs it)
run under ``valgrind --tool=cachegrind`` with simulated caches
(first-level instruction and data caches of 32 KiB, 8-way; a 1 MiB
16-way second level, this host's). The worker serves a warm-up and then
N1 requests, one connection each, from a client on 127.0.0.1, and is
stopped (SIGTERM to the master, by process id); a second life serves N2.
The worker's totals at exit, N2's minus N1's, divided by N2 - N1, are
what one request costs in the worker: gunicorn's
parsing and writing, Flask, the middleware and the collector, everything
but the kernel. ``PYTHONHASHSEED=0`` in both lives, and each request's
connection is opened before the previous request is sent, so the worker
takes the same path for every request (see ``serve_in_turn``). What still
moves from run to run, for reasons not pinned down (the cyclic collector's
timing is one candidate; running without address-space randomisation,
``setarch -R``, did not steady it): the instructions per request by 0.2 to
1 % (2,000 to 8,000), the first-level misses by 100 to 750, the
second-level data misses by 100 or more -- compare the applications
within one run, and over several runs. The
instructions and first-level misses in graywsgi's own code hold still
(within a few instructions; the same misses). A ``gthread`` worker's
threads take turns in an order no client can pin, and its totals move
more: the chain's added instructions read +19,900 and +26,300 in two runs
on the same build -- compare several runs there.

The table gives each application's figures and what it adds over plain:
instructions, first-level instruction-cache misses (code fetched again),
second-level misses (lines fetched from L3 or memory), branch
mispredictions, and the instructions executed in graywsgi's compiled code.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import callgrind  # bench/callgrind.py: the checks before valgrind runs
from cold_cache import (  # bench/cold_cache.py: graywsgi's own functions, readable names
    OWN,
    readable,
)
from gunicorn_ab import (  # bench/gunicorn_ab.py
    HEADERS,
    PATH,
    WORKERS,
    free_port,
    get,
    positive_int,
)

#: The applications of bench/ab_app.py this can count; the first is the baseline.
APPS = ("plain", "chained", "fused", "reference")
#: The simulated caches: size, associativity, line size.
CACHES = {"I1": (32_768, 8, 64), "D1": (32_768, 8, 64), "LL": (1_048_576, 16, 64)}
#: What the table shows -> cachegrind's event(s), summed.
SHOWN = {
    "instructions": ("Ir",),
    "L1i misses": ("I1mr",),
    "L2 misses, code": ("ILmr",),
    "L2 misses, data": ("DLmr", "DLmw"),
    "branch mispredictions": ("Bcm", "Bim"),
}
WARMUP = 200
#: Requests in the two lives (the first, the second), by ``--quick``.
LIVES = {False: (400, 800), True: (50, 150)}


def serve_in_turn(port: int, count: int, deadline: float) -> None:
    """Send ``count`` requests, one connection each, opening every request's
    connection before the previous request is sent: the worker always finds
    the next connection waiting when it returns to ``accept()``, so every
    request takes the same path through it. (Opened only when the previous
    response is read, the next connection would sometimes arrive before the
    worker looks and sometimes after -- a ``BlockingIOError`` and a
    ``select()`` more -- and the count per request would move by thousands
    of instructions from one run to the next.) All by ``deadline``
    (``time.monotonic()``), else :class:`RuntimeError`."""

    def left() -> float:
        seconds = deadline - time.monotonic()
        if seconds <= 0:
            raise RuntimeError(f"{count} requests took past the deadline")
        return seconds

    following = http.client.HTTPConnection("127.0.0.1", port, timeout=left())
    following.connect()
    try:
        for _ in range(count):
            current = following
            following = http.client.HTTPConnection("127.0.0.1", port, timeout=left())
            following.connect()
            try:
                current.request("GET", PATH, headers=HEADERS)
                response = current.getresponse()
                response.read()
            finally:
                current.close()
            if response.status != 200:
                raise RuntimeError(f"answered {response.status}, not 200")
    finally:
        following.close()


def life(app: str, requests: int, warmup: int, scratch: Path, timeout: float, worker_class: str = "sync") -> Path:
    """Serve ``warmup + requests`` requests from ``app`` in a gunicorn worker
    of ``worker_class`` (configured as ``bench/gunicorn_ab.py`` does) under
    cachegrind; the worker's output file."""
    out = scratch / f"{app}-{requests}"
    port = free_port()
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", f"--cachegrind-out-file={out}.%p",
        *(f"--{name}={size},{ways},{line}" for name, (size, ways, line) in CACHES.items()),
        sys.executable, "-m", "gunicorn", f"ab_app:{app}", "--chdir", str(HERE), "--bind", f"127.0.0.1:{port}",
        "--worker-class", worker_class, *WORKERS[worker_class], "--timeout", str(int(timeout)),
        "--graceful-timeout", "120",
        "--log-level", "warning",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    errors = scratch / f"stderr-{app}-{requests}.txt"
    with errors.open("w") as stderr:  # a file, not a pipe nobody reads while the worker runs
        # A session of its own: if the master must be killed, its worker goes with it (the group's id is its pid).
        master = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if master.poll() is not None:
                raise RuntimeError(f"gunicorn ({app}) under valgrind exited with {master.returncode}:\n"
                                   f"{errors.read_text()[-2000:]}")
            try:
                status = get(port, timeout=120)
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn ({app}) under valgrind did not answer within {timeout:.0f} s")
                time.sleep(0.5)
        if status != 200:
            raise RuntimeError(f"{app} answered {status}, not 200")
        serve_in_turn(port, warmup + requests, deadline)
        os.kill(master.pid, signal.SIGTERM)
        master.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait(timeout=30)
    workers = [Path(name) for name in glob.glob(f"{out}.*") if not name.endswith(f".{master.pid}")]
    if len(workers) != 1:
        raise RuntimeError(f"expected one worker's output for {app}, found {[p.name for p in workers]}")
    return workers[0]


def totals(out: Path) -> dict[str, int]:
    """Cachegrind's totals for the whole process (its ``summary:`` line)."""
    text = out.read_text()
    events = re.search(r"^events: (.+)$", text, re.MULTILINE)
    summary = re.search(r"^summary: (.+)$", text, re.MULTILINE)
    if not events or not summary:
        raise RuntimeError(f"{out}: no events or summary line")
    return dict(zip(events.group(1).split(), map(int, summary.group(1).split())))


def by_function(out: Path, timeout: float) -> dict[str, tuple[int, int]]:
    """(instructions, L1i misses) by function; code the C compiler inlined
    from a header is counted with the function it was inlined into."""
    annotated = subprocess.run(
        ["cg_annotate", "--auto=no", "--threshold=0", "--show=Ir,I1mr", str(out)],
        capture_output=True, text=True, timeout=timeout, check=True,
    ).stdout
    counts: dict[str, tuple[int, int]] = {}
    for line in annotated.splitlines():
        row = re.match(r"\s*([\d,]+)(?: \([\s\d.]+%\))?\s+([\d,]+)(?: \([\s\d.]+%\))?\s+(\S.*)$", line)
        if row and "PROGRAM TOTALS" not in line:
            name = row.group(3).split(" [", 1)[0].rsplit(":", 1)[-1]
            instructions, misses = counts.get(name, (0, 0))
            counts[name] = (instructions + int(row.group(1).replace(",", "")),
                            misses + int(row.group(2).replace(",", "")))
    return counts


def run(*, quick: bool = False, first: int | None = None, second: int | None = None,
        apps: t.Sequence[str] | None = None, functions: int = 0, over_plain: int = 0,
        log: t.TextIO | None = None, timeout: float = 900.0, worker_class: str = "sync") -> dict[str, t.Any]:
    """Per-request figures for every application; see the module docs.

    ``functions``: the chain's compiled functions with the most L1i misses;
    ``over_plain``: the functions anywhere in the worker (CPython, Flask,
    gunicorn, graywsgi) whose L1i misses grow most from plain to the chain.
    """
    if worker_class not in WORKERS:
        raise ValueError(f"unknown worker class {worker_class!r}; expected one of {', '.join(WORKERS)}")
    first, second = first or LIVES[quick][0], second or LIVES[quick][1]
    callgrind.check_runs(first, second, ("valgrind", "cg_annotate"))
    apps = list(dict.fromkeys(apps or (APPS[:2] if quick else APPS)))
    for app in apps:
        if app not in APPS:
            raise ValueError(f"unknown application {app!r}; expected one of {', '.join(APPS)}")
    if APPS[0] not in apps:
        apps.insert(0, APPS[0])  # the baseline the others are read against
    warmup = 20 if quick else WARMUP
    per_request: dict[str, dict[str, float]] = {}
    own: dict[str, dict[str, float]] = {}
    top: list[tuple[str, float, float]] = []
    #: app -> function -> (instructions, L1i misses) a request, every function the worker ran
    per_function: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for app in apps:
            low_out = life(app, first, warmup, Path(scratch), timeout, worker_class)
            high_out = life(app, second, warmup, Path(scratch), timeout, worker_class)
            low, high = totals(low_out), totals(high_out)
            per_request[app] = {shown: sum(high[e] - low[e] for e in events) / (second - first)
                                for shown, events in SHOWN.items()}
            low_functions, high_functions = by_function(low_out, timeout), by_function(high_out, timeout)
            per_function[app] = {}
            for name in {*low_functions, *high_functions}:
                (low_i, low_m), (high_i, high_m) = low_functions.get(name, (0, 0)), high_functions.get(name, (0, 0))
                per_function[app][name] = ((high_i - low_i) / (second - first), (high_m - low_m) / (second - first))
            added = {name: counts for name, counts in per_function[app].items() if OWN.search(name)}  # graywsgi's
            own[app] = {"instructions": sum(i for i, _ in added.values()), "L1i misses": sum(m for _, m in added.values())}
            if app == "chained" and functions:
                top = sorted(((readable(name), i, m) for name, (i, m) in added.items()), key=lambda row: -row[2])
                top = top[:functions]
            if log:
                print(f"in server, {app}: {per_request[app]}", file=log)
    grown = grown_over_plain(per_function, over_plain) if over_plain and "chained" in per_function else []
    return {"requests": [first, second], "warmup": warmup, "caches": CACHES, "worker_class": worker_class,
            "per_request": per_request, "graywsgi_code": own, "functions": top, "over_plain": grown,
            "table": table(per_request, own, top, first, second, worker_class, grown)}


def grown_over_plain(per_function: dict[str, dict[str, tuple[float, float]]],
                     count: int) -> list[tuple[str, float, float]]:
    """The ``count`` functions whose L1i misses a request grow most from
    plain to the chain: (name, instructions added, misses added). A function
    whose instructions barely move but whose misses grow is code of the
    server or of Flask that the chain's own code pushed out of the cache."""
    plain, chained = per_function[APPS[0]], per_function["chained"]
    rows = []
    for name in {*plain, *chained}:
        (plain_i, plain_m), (chained_i, chained_m) = plain.get(name, (0, 0)), chained.get(name, (0, 0))
        rows.append((readable(name), chained_i - plain_i, chained_m - plain_m))
    return sorted(rows, key=lambda row: -row[2])[:count]


def table(per_request: dict[str, dict[str, float]], own: dict[str, dict[str, float]],
          top: list[tuple[str, float, float]], first: int, second: int, worker_class: str = "sync",
          grown: t.Sequence[tuple[str, float, float]] = ()) -> str:
    base = per_request[APPS[0]]
    lines = [(f"per request inside a gunicorn {worker_class} worker"
              " (valgrind --tool=cachegrind, simulated L1 32 KiB, L2 1 MiB;"
              f" lives of {first:,} and {second:,} requests), and over {APPS[0]}"),
             f"{'':24}" + "".join(f"{app:>22}" for app in per_request)]
    for shown in SHOWN:
        cells = []
        for app, counts in per_request.items():
            value = counts[shown]
            cells.append(f"{value:>22,.0f}" if app == APPS[0] else f"{value:>12,.0f} ({value - base[shown]:+8,.0f})")
        lines.append(f"{shown:24}" + "".join(cells))
    lines.append(f"{'graywsgi code, instr.':24}" + "".join(f"{own[app]['instructions']:>22,.0f}" for app in per_request))
    lines.append(f"{'graywsgi code, L1i mis.':24}" + "".join(f"{round(own[app]['L1i misses']) + 0:>22,}" for app in per_request))
    if top:
        lines.append(f"\nthe chain's {len(top)} compiled functions with the most L1i misses per request"
                     " (instructions, misses):")
        lines.extend(f"{instructions:10,.0f} {misses:8,.1f}  {name}" for name, instructions, misses in top)
    if grown:
        lines.append(f"\nthe {len(grown)} functions anywhere in the worker whose L1i misses grow most from plain to"
                     " chained, per request (instructions added, misses added):")
        lines.extend(f"{instructions:+10,.0f} {misses:+8,.1f}  {name}" for name, instructions, misses in grown)
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="plain and chained, 50 and 150 requests")
    parser.add_argument("--apps", help=f"comma-separated, from {', '.join(APPS)} (plain is always counted)")
    parser.add_argument("--first", type=positive_int, help="requests in the first life (default 400)")
    parser.add_argument("--second", type=positive_int, help="requests in the second life (default 800)")
    parser.add_argument("--functions", type=positive_int, default=0,
                        help="also list the chain's compiled functions with the most L1i misses")
    parser.add_argument("--over-plain", type=positive_int, default=0, metavar="N",
                        help="also list the N functions anywhere in the worker whose L1i misses grow most"
                             " from plain to chained")
    parser.add_argument("--worker-class", choices=tuple(WORKERS), default="sync",
                        help="the gunicorn worker class, configured as bench/gunicorn_ab.py does (default sync)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    apps = None
    if args.apps is not None:
        apps = [name.strip() for name in args.apps.split(",") if name.strip()]
        unknown = [name for name in apps if name not in APPS]
        if unknown or not apps:
            parser.error(f"--apps: expected names from {', '.join(APPS)}, got {args.apps!r}")
    first, second = args.first or LIVES[args.quick][0], args.second or LIVES[args.quick][1]
    if second <= first:
        parser.error(f"--second must be more than --first ({second} <= {first})")
    try:
        result = run(quick=args.quick, first=first, second=second, apps=apps, functions=args.functions,
                     over_plain=args.over_plain, log=sys.stderr, worker_class=args.worker_class)
    except RuntimeError as error:
        print(f"in_server_counts: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2))
    else:
        print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
