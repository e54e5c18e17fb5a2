"""Throughput under gunicorn: a Flask hello-world without (A) and with (B) the core chain.

Run from the repository root (gunicorn and Flask are dev dependencies; the
load generator is ``wrk``, the Debian package, or a small threaded Python
client when ``wrk`` is not on the PATH)::

    python bench/gunicorn_ab.py            # 11 alternating A/B rounds of 3 s per worker class
    python bench/gunicorn_ab.py --quick    # 1 round of 1 s (smoke run)
    python bench/gunicorn_ab.py --control  # also a second plain server A' in every round
    python bench/gunicorn_ab.py --also fused --also reference  # hand-written middleware beside B
    python bench/gunicorn_ab.py --worker-class gthread   # one worker class only
    python bench/gunicorn_ab.py --pool a.json b.json     # the rounds of runs saved with --json, pooled

``--also fused`` and ``--also reference`` load, in every round beside A and
B, the same Flask hello-world behind the hand-written fused floor or the
issue's hand-written reference middleware (``bench/fused_floor.py``,
``bench/reference.py``): what a lean middleware doing that much of the work
costs in a worker, paired with A the same way, to read the chain's verdict
against.

For each worker class (``sync``: 1 worker; ``gthread``: 1 worker, 4
threads) both servers are started on free 127.0.0.1 ports, warmed up, then
loaded in turn -- A B, B A, A B, ... -- so drift on the shared machine hits
both alike. Where the machine has two CPUs or more, the servers run on the
last one and ``wrk`` on the first (``os.sched_setaffinity``; ``--no-pin``
turns it off): left to the scheduler, the worker and the load generator
trade places and one server's rounds ranged over 40 % here; pinned,
within 3 % in the same comparison (2026-11-25, an Intel host). Rounds
still drift when the machine's neighbours are busy: on a noisy AMD host on
2026-12-02, pinned rounds of one server ranged 2,536-3,268 req/s. The
table gives the median requests/s of each, the time the chain adds to
each request (``1/B - 1/A``) and, as the verdict, the median of the
rounds' own ratios: each round loads A and B back to back, so a round's
B/A shares that moment's machine, where the ratio of the two medians can
pair a quiet A round with a busy B round (in one run that morning single
rounds ranged 2,086-3,130 req/s). The rounds' lowest and highest ratio
are printed beside it, and a 95 % confidence interval for the median
ratio that assumes nothing of how the rounds are distributed
(:func:`median_interval`; 21 rounds or more narrow it): where the interval
holds the budget's 95 %, that run alone cannot decide it. With
``--control`` (and in ``bench/run.py``'s full run) a second plain server
A' is loaded in every round too, and
A'/A, paired the same way, shows what the method reports for two
identical servers: the error to read the verdict with. Every load run is
bounded by a timeout, and the servers are stopped by process id (SIGTERM,
then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH = "/orders/42"
HEADERS = {"X-Gray-ID": "user-7f3a9c2e-41d8-4f3b-9a51-0c6e2b7d8e10", "X-Env": "prod", "X-Version": "1.5.0"}
#: What ``--also`` can load beside A and B: a Flask hello-world behind ...
LEAN = {
    "fused": "the hand-written fused floor (bench/fused_floor.py: a subset of the chain's work, plain Python)",
    "reference": "the issue's hand-written reference middleware (bench/reference.py: header + FNV + context variable)",
}
WORKERS = {"sync": ["--workers", "1"], "gthread": ["--workers", "1", "--threads", "4"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_plan() -> tuple[int, int] | None:
    """(load generator's CPU, server's CPU), or ``None`` when pinning is not possible here."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[-1]) if len(cpus) >= 2 else None


def on_cpu(command: list[str], cpu: int | None) -> tuple[list[str], t.Callable[[], None] | None]:
    """``(command, preexec_fn)`` that run ``command`` (and what it forks) on ``cpu``.

    ``taskset`` (util-linux) where it is on the PATH; else a ``preexec_fn``
    (this process starts no threads of its own before the A/B).
    """
    if cpu is None:
        return command, None
    taskset = shutil.which("taskset")
    if taskset is not None:
        return [taskset, "-c", str(cpu), *command], None
    return command, lambda: os.sched_setaffinity(0, {cpu})


class Server:
    """One gunicorn master serving ``bench/ab_app.py:<name>``; stopped by its pid."""

    def __init__(self, name: str, worker_class: str, cpu: int | None = None) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "gunicorn", f"ab_app:{name}", "--chdir", str(HERE),
            "--bind", f"127.0.0.1:{self.port}", "--worker-class", worker_class, *WORKERS[worker_class],
            "--graceful-timeout", "3", "--timeout", "30", "--log-level", "warning",
        ]
        command, preexec = on_cpu(command, cpu)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({name}, {worker_class}) exited with {self.process.returncode}")
            try:
                if get(self.port) == 200:
                    return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn ({name}, {worker_class}) did not answer within 30 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def stop_all(servers: t.Iterable[Server]) -> None:
    """Stop every server, each in its own attempt; then raise the first failure, if any."""
    failure: BaseException | None = None
    for server in servers:
        try:
            server.stop()
        except BaseException as exc:  # the others must still be stopped
            failure = failure or exc
    if failure is not None:
        raise failure


def exit_on_sigterm() -> None:
    """Make SIGTERM a ``SystemExit``, so ``finally`` blocks stop the servers this process started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def get(port: int, timeout: float = 5) -> int:
    """One request as the load runs send it (``PATH``, ``HEADERS``); its status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", PATH, headers=HEADERS)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def load_wrk(port: int, seconds: int, connections: int, cpu: int | None = None) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for name, value in HEADERS.items():
        command += ["-H", f"{name}: {value}"]
    command, preexec = on_cpu([*command, f"http://127.0.0.1:{port}{PATH}"], cpu)
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True, preexec_fn=preexec
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{output}")
    match = re.search(r"Requests/sec:\s*([\d.]+)", output)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))


def load_python(port: int, seconds: int, connections: int, cpu: int | None = None) -> float:
    """A threaded keep-alive client (reconnecting when the server closes): the fallback without wrk.

    It runs in this process, which is not pinned: ``cpu`` is ignored.
    """
    stop_at = time.monotonic() + seconds
    counts = [0] * connections

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while time.monotonic() < stop_at:
            try:
                connection.request("GET", PATH, headers=HEADERS)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    counts[index] += 1
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException):
                connection.close()
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 10)
    return sum(counts) / (time.monotonic() - start)


def run(*, quick: bool = False, rounds: int | None = None, seconds: int | None = None, connections: int = 4,
        worker_classes: t.Sequence[str] = ("sync", "gthread"), log: t.TextIO | None = None,
        pin: bool = True, control: bool = False, also: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """The A/B for each worker class; see the module docs.

    :param control: also load a second plain server (A') in every round: its
        paired ratio to A is what the method reports for two identical servers.
    :param also: hand-written middleware (keys of :data:`LEAN`) to load in
        every round too, each paired with A as B is.
    """
    for worker_class in worker_classes:
        if worker_class not in WORKERS:
            raise ValueError(f"worker_classes: expected one of {', '.join(WORKERS)}, got {worker_class!r}")
    for name in also:
        if name not in LEAN:
            raise ValueError(f"also: expected one of {', '.join(LEAN)}, got {name!r}")
    rounds = rounds or (1 if quick else 11)
    seconds = seconds or (1 if quick else 3)
    tool = "wrk" if shutil.which("wrk") else "python"
    load = load_wrk if tool == "wrk" else load_python
    plan = cpu_plan() if pin and tool == "wrk" else None
    load_cpu, server_cpu = plan if plan is not None else (None, None)
    samples: dict[str, dict[str, list[float]]] = {}
    for worker_class in worker_classes:
        servers: dict[str, Server] = {}
        try:
            names = ("plain", "chained", *dict.fromkeys(also), *(("control",) if control else ()))
            for name in names:
                servers[name] = Server("plain" if name == "control" else name, worker_class, server_cpu)
            if not quick:
                for server in servers.values():
                    load(server.port, 1, connections, load_cpu)  # warm-up
            runs: dict[str, list[float]] = {name: [] for name in names}
            for index in range(rounds):
                order = names if index % 2 == 0 else names[::-1]
                for name in order:
                    runs[name].append(load(servers[name].port, seconds, connections, load_cpu))
                    if log:
                        print(f"gunicorn {worker_class} {name}: {runs[name][-1]:,.0f} req/s", file=log)
            samples[worker_class] = runs
        finally:
            stop_all(servers.values())
    ratios = {}
    pinned = f"server on CPU {server_cpu}, {tool} on CPU {load_cpu}" if plan is not None else "not pinned"
    lines = [f"gunicorn, Flask hello-world, load: {tool} -t1 -c{connections}, {rounds} alternating A/B rounds of {seconds} s"
             f" ({pinned})",
             f"{'worker class':14} {'A: plain req/s':>16} {'B: + core chain':>16} {'B/A':>7} {'rounds':>13}"
             f" {'added':>9} {'95 % CI':>13}   runs A | B"]
    added = {}
    intervals: dict[str, str] = {}
    lean: dict[str, dict[str, float]] = {name: {} for name in dict.fromkeys(also)}
    for worker_class, runs in samples.items():
        for name in ("chained", *lean):
            a, b = statistics.median(runs["plain"]), statistics.median(runs[name])
            ratio, low, high, added_us, interval = verdict(runs["plain"], runs[name])
            if name == "chained":
                ratios[worker_class] = ratio
                added[worker_class] = added_us
                intervals[worker_class] = interval
                label = worker_class
            else:
                lean[name][worker_class] = ratio
                label = f"  {name}"
            spread = " ".join(f"{x:.0f}" for x in runs["plain"]) + " | " + " ".join(f"{x:.0f}" for x in runs[name])
            span = f"{low * 100:.1f}-{high * 100:.1f}%"
            lines.append(f"{label:14} {a:16,.0f} {b:16,.0f} {ratio * 100:6.1f}% {span:>13}"
                         f" {added_us:6.1f} µs {interval:>13}   {spread}")
    controls = {}
    for worker_class, runs in samples.items():
        if "control" in runs:
            ratio, low, high, _added, interval = verdict(runs["plain"], runs["control"])
            controls[worker_class] = ratio
            lines.append(f"{worker_class} control: a second plain server A', A'/A {ratio * 100:.1f}%"
                         f" (rounds {low * 100:.1f}-{high * 100:.1f}%, 95 % CI {interval}):"
                         " the method's own error for identical servers")
    lines.extend(f"{name}: the same Flask app behind {LEAN[name]}" for name in lean)
    return {"tool": tool, "rounds": rounds, "seconds": seconds, "connections": connections, "pinned": pinned,
            "samples": samples, "ratios": ratios, "added_us": added, "intervals": intervals, "controls": controls,
            "lean": lean,
            "table": "\n".join(lines)}


def round_ratios(a_runs: t.Sequence[float], b_runs: t.Sequence[float]) -> list[float]:
    """Each round's B/A (req/s, in round order); ValueError unless the rounds pair up and all served."""
    if not a_runs or len(a_runs) != len(b_runs):
        raise ValueError(f"need as many B rounds as A rounds, got {len(a_runs)} and {len(b_runs)}")
    if min(*a_runs, *b_runs) <= 0:
        raise ValueError("a round served nothing: no ratio to take")
    return [b / a for a, b in zip(a_runs, b_runs)]


def paired(a_runs: t.Sequence[float], b_runs: t.Sequence[float]) -> tuple[float, float, float, float]:
    """Round-by-round comparison of B with A (req/s, in round order).

    :return: the median of the rounds' ratios B/A, the lowest and the
        highest, and the median time B adds per request in µs (1/B - 1/A).
    """
    ratios = round_ratios(a_runs, b_runs)
    added = [(1 / b - 1 / a) * 1e6 for a, b in zip(a_runs, b_runs)]
    return statistics.median(ratios), min(ratios), max(ratios), statistics.median(added)


def verdict(a_runs: t.Sequence[float], b_runs: t.Sequence[float]) -> tuple[float, float, float, float, str]:
    """:func:`paired` and the median ratio's :func:`interval_text`; NaNs and
    ``"n/a"`` when a round served nothing (the Python client can), so that
    the rest of the table still prints."""
    try:
        return (*paired(a_runs, b_runs), interval_text(round_ratios(a_runs, b_runs)))
    except ValueError:
        return math.nan, math.nan, math.nan, math.nan, "n/a"


def median_interval(values: t.Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median of ``values``.

    The interval runs from the k-th lowest to the k-th highest value, with
    the largest k for which fewer than k of n values fall below the true
    median with probability at most ``(1 - confidence) / 2`` (a binomial
    count with p = 1/2: each value lies below the median by even chance).
    It assumes nothing of the values' distribution, only that the rounds
    are independent draws; for 21 rounds it is the 6th to the 16th value
    (97.3 % coverage), for 11 the 2nd to the 10th.

    :return: ``(low, high)``, or ``None`` when there are too few values for
        any interval to reach ``confidence`` (fewer than 6 at 95 %).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence!r}")
    count = len(values)
    tail = 0  # P(at most i values below the median), summed as i grows
    k = 0
    for below in range(count):
        tail += math.comb(count, below)
        if tail / 2 ** count > (1 - confidence) / 2:
            break
        k = below + 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[count - k]


def interval_text(values: t.Sequence[float]) -> str:
    """:func:`median_interval` of ratios as percentages, ``"n/a"`` without one."""
    interval = median_interval(values)
    return "n/a" if interval is None else f"{interval[0] * 100:.1f}-{interval[1] * 100:.1f}%"


def pool(reports: t.Mapping[str, t.Mapping[str, t.Any]]) -> dict[str, t.Any]:
    """The rounds of several runs pooled: for each worker class and each
    server paired with A (the chain, ``--also`` middleware, the control),
    the median of every round's ratio and its :func:`median_interval`.

    ``reports`` maps a name (the file's) to what ``--json`` printed, or to
    ``bench/run.py --json``'s report (its ``server``). Rounds of one run
    share its machine, so they are not quite independent, and the pooled
    interval is a little too narrow; a round that served nothing is an
    error, named with its report.
    """
    if not reports:
        raise ValueError("no reports to pool")
    ratios: dict[str, dict[str, list[float]]] = {}
    for name, report in reports.items():
        samples = report.get("samples") if isinstance(report, dict) else None
        if samples is None and isinstance(report, dict) and isinstance(report.get("server"), dict):
            samples = report["server"].get("samples")
        if not isinstance(samples, dict) or not samples:
            raise ValueError(f"{name}: no rounds in it (expected the JSON of gunicorn_ab.py --json or run.py --json)")
        for worker_class, runs in samples.items():
            if not isinstance(runs, dict) or "plain" not in runs:
                raise ValueError(f"{name}: {worker_class}: no plain server's rounds")
            for server, b_runs in runs.items():
                if server == "plain":
                    continue
                try:
                    found = round_ratios(runs["plain"], b_runs)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{name}: {worker_class}, {server}: {exc}") from None
                ratios.setdefault(worker_class, {}).setdefault(server, []).extend(found)
    rows = {worker_class: {server: {"rounds": len(found), "ratio": statistics.median(found),
                                    "interval": median_interval(found)}
                           for server, found in servers.items()}
            for worker_class, servers in ratios.items()}
    lines = [(f"gunicorn A/B, the rounds of {len(reports)} run{'s' if len(reports) != 1 else ''} pooled"
              " (rounds of one run share its machine: the interval is a little too narrow)"),
             f"{'worker class':14} {'server':10} {'rounds':>7} {'median B/A':>11} {'95 % CI':>13}"]
    for worker_class, servers in rows.items():
        for server, row in servers.items():
            lines.append(f"{worker_class:14} {server:10} {row['rounds']:7} {row['ratio'] * 100:10.1f}%"
                         f" {interval_text(ratios[worker_class][server]):>13}")
    return {"runs": list(reports), "pooled": rows, "table": "\n".join(lines)}


def positive_int(text: str) -> int:
    """An argparse type: an int > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def command_line(argv: t.Sequence[str] | None, *, description: str | None, run: t.Callable[..., dict[str, t.Any]],
                 quick_help: str, rounds_help: str, control_help: str | None = None) -> int:
    """The command line this script and ``bench/in_worker.py`` share: parse,
    ``run(...)`` under load, print the table (or ``--json``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--rounds", type=positive_int, help=rounds_help)
    parser.add_argument("--seconds", type=positive_int, help="seconds per load run (default 3)")
    parser.add_argument("--connections", type=positive_int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="leave the servers and wrk to the scheduler")
    if control_help:
        parser.add_argument("--control", action="store_true", help=control_help)
        parser.add_argument("--also", action="append", choices=LEAN, default=[],
                            help="also load this hand-written middleware each round, paired with A as B is: "
                                 + "; ".join(f"{k}: {v}" for k, v in LEAN.items()))
        parser.add_argument("--worker-class", action="append", choices=tuple(WORKERS), dest="worker_classes",
                            help="run this worker class only (repeat for both; default: sync and gthread)")
        parser.add_argument("--pool", nargs="+", metavar="JSON", help="run nothing: pool the rounds of earlier runs "
                            "saved with --json (this script's or bench/run.py's) and print each median and interval")
    args = parser.parse_args(argv)
    if getattr(args, "pool", None):
        reports = {}
        for path in args.pool:
            if path in reports:
                parser.error(f"--pool: {path} is given twice (its rounds would count twice)")
            try:
                reports[path] = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                parser.error(f"--pool: {path}: {exc}")
        try:
            pooled = pool(reports)
        except ValueError as exc:
            parser.error(f"--pool: {exc}")
        print(json.dumps({k: v for k, v in pooled.items() if k != "table"}, indent=2) if args.json else pooled["table"])
        return 0
    exit_on_sigterm()
    options: dict[str, t.Any] = {"control": True} if getattr(args, "control", False) else {}
    if getattr(args, "also", None):
        options["also"] = args.also
    if getattr(args, "worker_classes", None):
        options["worker_classes"] = tuple(dict.fromkeys(args.worker_classes))
    result = run(quick=args.quick, rounds=args.rounds, seconds=args.seconds, connections=args.connections,
                 log=sys.stderr, pin=not args.no_pin, **options)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2))
    else:
        print(result["table"])
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    return command_line(argv, description=__doc__, run=run, quick_help="1 round of 1 s per worker class",
                        rounds_help="A/B rounds (default 11)",
                        control_help="also load a second plain server each round (A'/A: the method's own error)")


if __name__ == "__main__":
    sys.exit(main())
