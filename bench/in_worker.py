"""What each part of the chain costs inside a gunicorn worker, under load.

Run from the repository root (gunicorn and Flask are dev dependencies; the
load generator is ``wrk``, else a small threaded Python client)::

    python bench/in_worker.py            # 3 rounds of 3 s per variant
    python bench/in_worker.py --quick    # 1 round of 1 s (smoke run)

``bench/gunicorn_ab.py`` gives the throughput a chain costs;
this gives where the time goes. Each variant is Flask's hello-world behind
a longer part of the core chain (``bench/ab_app.py``'s ``timed_*``) or,
for scale, behind the issue's hand-written reference (header + FNV +
context, ``bench/reference.py``) and the hand-written fused floor (a
subset of the chain's work in one plain-Python class,
``bench/fused_floor.py``), served by its own gunicorn ``sync``
worker. A wrapper inside the worker times each WSGI call -- the call,
reading the body and closing it -- and answers ``GET /__timing`` with the
mean since the last such request. The
variants are loaded in turn, round after round (the order rotates), and
the table gives the median of the rounds' means and what each variant adds
to Flask alone. Inside a server the chain runs with caches the server's
own work has cooled, which the in-process loop of ``bench/run.py`` does
not show. Servers and ``wrk`` are pinned as in ``bench/gunicorn_ab.py``;
every load run has a timeout and the servers are stopped by process id.
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import sys
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gunicorn_ab  # bench/gunicorn_ab.py
from ab_app import TIMING_PATH

#: Label -> the ``bench/ab_app.py`` application; the first is the baseline.
VARIANTS = {
    "Flask hello-world alone": "timed_plain",
    "reference: header + FNV + context": "timed_reference",
    "fused floor (hand-written subset)": "timed_fused",
    "Extraction": "timed_extraction",
    "Extraction + CanarySplit": "timed_split",
    "Extraction + Router": "timed_router",
    "core chain, Guard(retry_on_stable=False)": "timed_core_no_retry",
    "core chain": "timed_core",
}


def read_timing(port: int) -> dict[str, t.Any]:
    """The worker's mean since the last call, and start over."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", TIMING_PATH)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{TIMING_PATH} answered {response.status}: {body[:200]!r}")
        report: dict[str, t.Any] = json.loads(body)
        return report
    finally:
        connection.close()


def run(*, quick: bool = False, rounds: int | None = None, seconds: int | None = None, connections: int = 4,
        log: t.TextIO | None = None, pin: bool = True) -> dict[str, t.Any]:
    rounds = rounds or (1 if quick else 3)
    seconds = seconds or (1 if quick else 3)
    tool = "wrk" if shutil.which("wrk") else "python"
    load = gunicorn_ab.load_wrk if tool == "wrk" else gunicorn_ab.load_python
    plan = gunicorn_ab.cpu_plan() if pin and tool == "wrk" else None
    load_cpu, server_cpu = plan if plan is not None else (None, None)
    means: dict[str, list[float]] = {label: [] for label in VARIANTS}
    rates: dict[str, list[float]] = {label: [] for label in VARIANTS}
    servers: dict[str, gunicorn_ab.Server] = {}
    try:
        for label, name in VARIANTS.items():
            servers[label] = gunicorn_ab.Server(name, "sync", server_cpu)
        labels = list(VARIANTS)
        for index in range(rounds):
            order = labels[index % len(labels):] + labels[:index % len(labels)]
            for label in order:
                port = servers[label].port
                if index == 0 and not quick:
                    load(port, 1, connections, load_cpu)  # warm-up
                read_timing(port)  # start over
                rate = load(port, seconds, connections, load_cpu)
                report = read_timing(port)
                if not report["requests"]:
                    raise RuntimeError(f"{label}: the worker timed no request")
                means[label].append(report["mean_us"])
                rates[label].append(rate)
                if log:
                    print(f"in worker, {label}: {report['mean_us']:.1f} µs per call, {rate:,.0f} req/s", file=log)
    finally:
        gunicorn_ab.stop_all(servers.values())
    baseline = statistics.median(means[labels[0]])
    pinned = f"servers on CPU {server_cpu}, {tool} on CPU {load_cpu}" if plan is not None else "not pinned"
    lines = [f"inside a gunicorn sync worker, Flask hello-world behind each variant, load: {tool} -t1 -c{connections}, "
             f"{rounds} rounds of {seconds} s ({pinned})",
             f"{'variant':42} {'µs per call':>12} {'added':>9} {'req/s':>8}"]
    rows = {}
    for label in labels:
        mean = statistics.median(means[label])
        rate = statistics.median(rates[label])
        rows[label] = {"mean_us": mean, "added_us": mean - baseline, "requests_per_s": rate, "means": means[label]}
        added = "" if label == labels[0] else f"{mean - baseline:+.1f}"
        lines.append(f"{label:42} {mean:12.1f} {added:>9} {rate:8,.0f}")
    return {"tool": tool, "rounds": rounds, "seconds": seconds, "pinned": pinned, "variants": rows,
            "table": "\n".join(lines)}


def main(argv: t.Sequence[str] | None = None) -> int:
    return gunicorn_ab.command_line(argv, description=__doc__, run=run, quick_help="1 round of 1 s per variant",
                                    rounds_help="rounds (default 3)")


if __name__ == "__main__":
    sys.exit(main())
