"""The benchmark runs (a smoke run in seconds); it asserts no time, only that it completes and reports."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from .bench_helpers import load_bench_module

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*arguments: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run a bench script in a session of its own; past ``timeout``, SIGTERM
    (the scripts then stop the servers they started) and SIGKILL the whole
    session, so no gunicorn outlives the test."""
    process = subprocess.Popen(
        [sys.executable, *arguments], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_bench_quick_run_prints_the_tables(tmp_path: Path) -> None:
    plot = tmp_path / "layers.png"
    done = run_bench("bench/run.py", "--quick", "--no-callgrind", "--no-cold-cache", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000  # the plot was drawn
    out = done.stdout
    assert "bare WSGI (floor)" in out
    assert "core chain: Extraction + Router + Guard, metrics off" in out
    assert "reference: header + FNV + context, hand-written" in out
    assert "fused floor: one class, a subset of the core chain's work" in out
    assert "ProtocolEvolution, old API in compat (3 headers added)" in out
    assert "Metrics alone (dogstatsd, UDP), no gray context" in out
    assert "this machine vs the issue's reference figures" in out
    assert "[pv] openapi-core, as middleware" in out
    assert "[breaker] pybreaker CircuitBreaker.call" in out
    assert "[split] GrowthBook 15 % rollout" in out
    assert "memory, full chain, tracemalloc on" in out
    assert "gunicorn, Flask hello-world" in out
    assert "B/A        rounds     added" in out  # paired ratio, its rounds' range, the µs added per request
    assert "fused: the same Flask app behind the hand-written fused floor" in out  # loaded beside the chain
    assert "core chain, not fused (a pass-through between the layers)" in out
    assert "inside a gunicorn sync worker" in out  # bench/in_worker.py ran too
    assert "budget summary" in out
    summary = out.split("budget summary", 1)[1]
    for budget in ("core chain over bare, compiled", "core chain over bare, pure Python",
                   "core chain + metrics over bare, compiled", "pre-validation vs openapi-core",
                   "10,000 rules vs 10", "gunicorn req/s with core chain, sync", "gunicorn req/s with core chain, gthread",
                   "core chain inside a gunicorn worker", "memory flat"):
        line = next(line for line in summary.splitlines() if line.startswith(budget))
        assert " PASS " in line or " MISS " in line, line
    assert "; fused floor: " in next(line for line in summary.splitlines() if line.startswith("core chain over bare"))
    # Rule scaling for every shape (bench/rule_scaling.py): a verdict for each indexable one.
    assert "rule scaling, Extraction + Router" in out
    assert "metrics backends over the core chain" in out  # bench/exporters.py
    for shape in ("host", "prefix", "template", "header", "query", "cookie"):
        line = next(line for line in summary.splitlines() if line.startswith(f"10,000 {shape} rules vs 10"))
        assert " PASS " in line or " MISS " in line, line
    for shape in ("version range", "expression"):
        line = next(line for line in summary.splitlines() if line.startswith(f"10,000 {shape} rules vs 10"))
        assert "not indexed" in line and " n/a " in line, line
    # Both paths were timed: this process's and, in a second process, the other one.
    assert "the same chain cases, " in out


@pytest.mark.parametrize(
    ("script", "arguments", "message"),
    [
        ("bench/run.py", ["--repeat", "0"], "--repeat: must be a finite number > 0"),
        ("bench/run.py", ["--target", "inf"], "--target: must be a finite number > 0"),
        ("bench/run.py", ["--target", "fast"], "--target: expected a number, got 'fast'"),
        ("bench/run.py", ["--memory", "0.5"], "--memory: expected comma-separated request counts"),
        ("bench/run.py", ["--memory", "100,-1"], "--memory: request counts must be >= 0"),
        ("bench/run.py", ["--profile", "0"], "--profile: must be a finite number > 0"),
        ("bench/gunicorn_ab.py", ["--rounds", "0"], "--rounds: must be > 0"),
        ("bench/gunicorn_ab.py", ["--seconds", "two"], "--seconds: expected a whole number, got 'two'"),
        ("bench/gunicorn_ab.py", ["--also", "nginx"], "--also: invalid choice: 'nginx'"),
        ("bench/gunicorn_ab.py", ["--worker-class", "eventlet"], "--worker-class: invalid choice: 'eventlet'"),
        ("bench/in_server_counts.py", ["--apps", "plain,nginx"], "--apps: expected names from plain, chained"),
        ("bench/in_server_counts.py", ["--first", "100", "--second", "50"],
         "--second must be more than --first (50 <= 100)"),
        ("bench/in_server_counts.py", ["--functions", "0"], "--functions: must be > 0, got '0'"),
        ("bench/in_server_counts.py", ["--worker-class", "eventlet"], "--worker-class: invalid choice: 'eventlet'"),
        ("bench/in_server_counts.py", ["--over-plain", "-3"], "--over-plain: must be > 0, got '-3'"),
        ("bench/callgrind_steps.py", ["--requests", "5"], "--requests: must be at least 100"),
        ("bench/cold_cache.py", ["--timed", "--sweep-mib", "0"], "--sweep-mib: must be > 0, got '0'"),
        ("bench/cold_cache.py", ["--timed", "--idle-us", "x"], "--idle-us: expected a whole number, got 'x'"),
        ("bench/cold_cache.py", ["--idle-us", "500"], "--sweep-mib and --idle-us go with --timed"),
        ("bench/cold_cache.py", ["--timed", "--functions", "5"], "--functions goes with the simulated run"),
        ("bench/compare_builds.py", ["/nonexistent", "."], "/nonexistent: not a graywsgi checkout"),
        ("bench/compare_builds.py", [".", ".", "--pairs", "0"], "--pairs: must be > 0, got '0'"),
        ("bench/compare_builds.py", [".", ".", "--rounds", "many"], "--rounds: expected a whole number, got 'many'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(script: str, arguments: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, script, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert done.stdout == ""


def test_rule_scaling_requests_match_the_middle_rule_of_every_shape() -> None:
    """Each shape's bench request matches the rule it is meant to (else its timing means nothing)."""
    scaling = load_bench_module("rule_scaling")
    for shape in scaling.SHAPES:
        for count in (10, 1_000):
            scaling.check(scaling.request(shape, count), shape, count)  # raises if not
        with pytest.raises(RuntimeError, match="not r5"):
            scaling.check(scaling.request(shape, 1_000), shape, 10)  # rule r500 is not in a set of 10


def test_rule_scaling_quick_run_prints_every_shape() -> None:
    done = run_bench("bench/rule_scaling.py", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["ratios"]) == ["host", "prefix", "template", "header", "query", "cookie", "version range",
                                      "expression"]
    assert [shape for shape, indexed in report["indexed"].items() if not indexed] == ["version range", "expression"]
    assert len(report["median_ns"]) == 8 * 3 and all(value > 0 for value in report["median_ns"].values())


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="valgrind runs of a few seconds each: once per test run is enough")
def test_rule_scaling_counts_the_header_index_flat() -> None:
    """Counted, not timed: a request costs the header index the same
    instructions at 10 and 200 rules. Were the index to scan, each of the 95
    further rules before the matching one would add its check (expressions,
    which are scanned, add about 6,000 instructions a rule here)."""
    scaling = load_bench_module("rule_scaling")
    result = scaling.count_instructions(shapes=["header"], counts=(10, 200))
    assert result["counts"] == [10, 200] and result["requests"] == [200, 1_200]
    header = result["instructions"]["header"]
    assert 5_000 < header[10] < 200_000  # a request through Extraction + Router, not nothing
    assert 0.9 < result["ratios"]["header"] < 1.1
    table = scaling.count_table(result)
    assert "200/10" in table and f"{header[200]:,}" in table


def test_rule_scaling_count_refuses_an_unknown_shape_and_shape_without_count() -> None:
    scaling = load_bench_module("rule_scaling")
    with pytest.raises(ValueError, match="no rule shape 'nope'"):
        scaling.count_instructions(shapes=["nope"])
    done = run_bench("bench/rule_scaling.py", "--shape", "header")
    assert done.returncode == 2 and "--shape goes with --count" in done.stderr


def test_exporters_quick_run_times_every_backend() -> None:
    """statsd, Prometheus and OpenTelemetry are dev dependencies: each is timed beside the bare core chain."""
    done = run_bench("bench/exporters.py", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["median_ns"]) == [
        "core chain, no metrics", "statsd Metrics (dogstatsd, UDP)", "PrometheusMetrics (prometheus_client)",
        "OpenTelemetryMiddleware (SDK, in-memory)",
    ]
    assert all(value > 0 for value in report["median_ns"].values())
    assert set(report["added_ns"]) == set(report["median_ns"]) - {"core chain, no metrics"}


def test_in_worker_quick_run_prints_every_variant() -> None:
    done = run_bench("bench/in_worker.py", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["variants"]) == [
        "Flask hello-world alone", "reference: header + FNV + context", "fused floor (hand-written subset)",
        "Extraction", "Extraction + CanarySplit",
        "Extraction + Router", "core chain, Guard(retry_on_stable=False)", "core chain",
    ]
    for row in report["variants"].values():
        assert row["mean_us"] > 0 and row["requests_per_s"] > 0  # each worker timed requests under load


def _gunicorn_ab() -> t.Any:
    return load_bench_module("gunicorn_ab")


def test_ab_verdict_pairs_each_b_round_with_its_a_round() -> None:
    # The machine drifts from 1,000 to 3,000 req/s over the rounds; every B
    # round is 90 % of the A round beside it.
    a = [1000.0, 3000.0, 2000.0, 1500.0, 2500.0]
    b = [x * 0.9 for x in a]
    ratio, low, high, added = _gunicorn_ab().paired(a, b)
    assert ratio == pytest.approx(0.9) and low == pytest.approx(0.9) and high == pytest.approx(0.9)
    # 1/B - 1/A in µs, median over rounds: at 2,000 req/s, 1/1800 - 1/2000 s.
    assert added == pytest.approx((1 / 1800 - 1 / 2000) * 1e6)


def test_ab_verdict_differs_from_the_ratio_of_medians_when_rounds_drift() -> None:
    # Round by round B is 90 %, 100 % and 80 % of A: the paired median is
    # 0.9, where the ratio of the medians (1,600 / 2,000) would say 0.8.
    a, b = [1000.0, 3000.0, 2000.0], [900.0, 3000.0, 1600.0]
    ratio, low, high, _ = _gunicorn_ab().paired(a, b)
    assert ratio == pytest.approx(0.9)
    assert (low, high) == (pytest.approx(0.8), pytest.approx(1.0))


def test_median_interval_takes_the_order_statistics_a_binomial_count_allows() -> None:
    gunicorn_ab = _gunicorn_ab()
    # Shuffled, so that the function has to sort: 21 rounds -> the 6th and
    # 16th lowest (P(Binomial(21, 1/2) <= 5) = 0.0133 <= 0.025 < P(<= 6) = 0.0392).
    values = [float(v) for v in (14, 3, 21, 9, 1, 18, 6, 11, 20, 2, 16, 8, 13, 5, 19, 10, 4, 17, 7, 15, 12)]
    assert gunicorn_ab.median_interval(values) == (6.0, 16.0)
    assert gunicorn_ab.median_interval([float(v) for v in range(11, 0, -1)]) == (2.0, 10.0)  # 67/2048 > 0.025
    assert gunicorn_ab.median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)  # 1/64 <= 0.025
    assert gunicorn_ab.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # even min..max covers only 93.8 %
    assert gunicorn_ab.median_interval([1.0, 2.0, 3.0, 4.0, 5.0], confidence=0.9) == (1.0, 5.0)
    assert gunicorn_ab.interval_text([0.9] * 10 + [0.95] * 11) == "90.0-95.0%"
    assert gunicorn_ab.interval_text([0.9, 0.95]) == "n/a"
    for confidence in (0.0, 1.0, 95.0):
        with pytest.raises(ValueError, match="confidence must lie between 0 and 1"):
            gunicorn_ab.median_interval(values, confidence=confidence)


def test_median_interval_covers_the_true_median_as_often_as_it_claims() -> None:
    # Rounds drawn from a skewed distribution (exponential, median ln 2): the
    # 21-round interval claims 97.3 %, and 4,000 seeded runs should cover the
    # median that often, give or take their sampling error (sd 0.26 points;
    # the bound allows 1.2). An interval built on the mean's normal
    # approximation, or one order statistic further in, would fall short.
    gunicorn_ab = _gunicorn_ab()
    draw = random.Random(20261207)
    covered = 0
    for _ in range(4_000):
        low, high = gunicorn_ab.median_interval([draw.expovariate(1.0) for _ in range(21)])
        covered += low <= math.log(2) <= high
    assert covered / 4_000 == pytest.approx(1 - 2 * 27_896 / 2**21, abs=0.012)


def test_ab_table_verdict_gives_the_interval_or_no_verdict_when_a_round_served_nothing() -> None:
    gunicorn_ab = _gunicorn_ab()
    a = [1000.0 + 10 * i for i in range(21)]
    b = [x * (0.90 + 0.005 * i) for i, x in enumerate(a)]  # round ratios 0.900, 0.905, ..., 1.000
    ratio, low, high, _added, interval = gunicorn_ab.verdict(a, b)
    assert (ratio, low, high) == (pytest.approx(0.95), pytest.approx(0.90), pytest.approx(1.0))
    assert interval == "92.5-97.5%"  # the 6th and 16th of the 21 ratios
    stopped = gunicorn_ab.verdict([1000.0, 0.0], [900.0, 950.0])
    assert all(math.isnan(x) for x in stopped[:4]) and stopped[4] == "n/a"


@pytest.mark.parametrize("a, b", [([], []), ([1.0, 2.0], [1.0]), ([1.0, 0.0], [1.0, 1.0])])
def test_ab_verdict_refuses_unpaired_or_empty_rounds(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError):
        _gunicorn_ab().paired(a, b)


def _saved_run(ratios: list[float], control: list[float] | None = None) -> dict[str, t.Any]:
    """What ``gunicorn_ab.py --json`` saves: a drifting A and B at ``ratios`` of it, both worker classes."""
    plain = [1000.0 + 100 * i for i in range(len(ratios))]
    runs = {"plain": plain, "chained": [a * r for a, r in zip(plain, ratios)]}
    if control is not None:
        runs["control"] = [a * r for a, r in zip(plain, control)]
    return {"samples": {"sync": runs, "gthread": dict(runs)}, "ratios": {}}


def test_ab_pool_takes_the_median_and_interval_of_every_round_of_every_run() -> None:
    gunicorn_ab = _gunicorn_ab()
    first = [0.90 + 0.01 * i for i in range(11)]  # 0.90 ... 1.00
    second = [0.80 + 0.01 * i for i in range(10)]  # 0.80 ... 0.89
    # The second as bench/run.py --json saves it: the A/B's report under "server".
    pooled = gunicorn_ab.pool({"a.json": _saved_run(first, control=[1.0] * 11),
                               "run.json": {"server": _saved_run(second), "cases": {}}})
    assert pooled["runs"] == ["a.json", "run.json"]
    chained = pooled["pooled"]["gthread"]["chained"]
    assert chained["rounds"] == 21
    assert chained["ratio"] == pytest.approx(0.90)  # the 11th of the 21 together; neither run's own median
    low, high = chained["interval"]
    assert (low, high) == (pytest.approx(0.85), pytest.approx(0.95))  # the 6th and 16th
    assert pooled["pooled"]["sync"]["control"]["rounds"] == 11  # only the run that had a control
    assert "gthread        chained         21       90.0%    85.0-95.0%" in pooled["table"]


@pytest.mark.parametrize("reports, message", [
    ({}, "no reports to pool"),
    ({"x.json": {"cases": {}}}, "x.json: no rounds in it"),
    ({"x.json": {"samples": {"sync": {"chained": [1.0]}}}}, "x.json: sync: no plain server's rounds"),
    ({"x.json": {"samples": {"sync": {"plain": [1.0, 0.0], "chained": [1.0, 1.0]}}}},
     "x.json: sync, chained: a round served nothing"),
    ({"x.json": {"samples": {"sync": {"plain": [1.0, 2.0], "chained": [1.0]}}}},
     "x.json: sync, chained: need as many B rounds as A rounds"),
])
def test_ab_pool_names_the_run_it_cannot_read(reports: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _gunicorn_ab().pool(reports)


def test_ab_pool_command_reads_saved_runs_and_refuses_a_file_that_is_not_one(tmp_path: Path) -> None:
    saved = tmp_path / "a.json"
    saved.write_text(json.dumps(_saved_run([0.90 + 0.01 * i for i in range(11)])), encoding="utf-8")
    other = tmp_path / "b.json"
    other.write_text(json.dumps(_saved_run([0.80 + 0.01 * i for i in range(10)])), encoding="utf-8")
    done = run_bench("bench/gunicorn_ab.py", "--pool", str(saved), str(other), "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pooled"]["sync"]["chained"]["rounds"] == 21 and "gunicorn" not in done.stderr  # no server ran
    assert report["pooled"]["sync"]["chained"]["ratio"] == pytest.approx(0.90)
    done = run_bench("bench/gunicorn_ab.py", "--pool", str(saved), str(saved), timeout=60)
    assert done.returncode == 2 and f"--pool: {saved} is given twice" in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    done = run_bench("bench/gunicorn_ab.py", "--pool", str(saved), str(broken), timeout=60)
    assert done.returncode == 2 and f"--pool: {broken}:" in done.stderr and done.stdout == ""


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="counts both paths itself: once per test run is enough")
def test_callgrind_quick_run_counts_instructions_per_request() -> None:
    done = run_bench("bench/callgrind.py", "--quick", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counted = report["instructions"]["compiled"]
    floor = counted["bare WSGI (floor)"]
    core = counted["core chain: Extraction + Router + Guard, metrics off"]
    # The floor is a function call and a list: a few thousand instructions
    # with the bench loop; the chain does real work on top of it.
    assert 500 < floor < core
    assert report["requests"] == [200, 1200]


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="simulates the compiled path (or the only one built): once per test run is enough")
def test_cold_cache_quick_run_counts_the_misses_the_chain_adds() -> None:
    done = run_bench("bench/cold_cache.py", "--quick", "--functions", "12", "--json", timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["requests"] == [30, 90]
    mode = "compiled" if "compiled" in report["added"] else "pure Python"
    floor, core = (report["per_request"][mode][name] for name in (
        "bare WSGI (floor)", "core chain: Extraction + Router + Guard, metrics off"))
    # Every request follows a Flask request and a sweep twice the simulated
    # L2: the floor fetches its few lines again each time, the chain many more.
    assert 0 < floor["L2 misses, code"] < core["L2 misses, code"]
    assert floor["instructions"] < core["instructions"]
    added = report["added"][mode]
    assert added["L2 misses, code"] + added["L2 misses, data"] > 100, added
    top = report["functions"][mode]
    assert len(top) == 12 and [count for _name, count in top] == sorted((count for _name, count in top), reverse=True)
    if mode == "compiled":  # the split found graywsgi's own functions (a renamed C symbol would drop it to 0)
        assert 0 < added["L2 misses in graywsgi's code"] <= core["L2 misses, code"] + core["L2 misses, data"], added
        # The functions that add the most misses are the request path's, named by their Python path.
        assert sum(name.startswith("graywsgi.layers.") for name, _count in top) >= 3, top
    else:
        assert added["L2 misses in graywsgi's code"] == 0, added


def test_cold_cache_timed_run_times_the_same_loop_without_valgrind() -> None:
    done = run_bench("bench/cold_cache.py", "--timed", "--quick", "--idle-us", "100", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rounds"], report["requests"], report["sweep_mib"], report["idle_us"]) == (3, 200, 1, 100)
    floor, core = (report["median_ns"][name] for name in (
        "bare WSGI (floor)", "core chain: Extraction + Router + Guard, metrics off"))
    assert 0 < floor < core  # the chain's work, on top of the floor's
    assert report["added_ns"] == pytest.approx(core - floor)


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="splits the compiled path's count: once per test run is enough")
def test_callgrind_steps_split_the_compiled_chain() -> None:
    import graywsgi.speedups

    if not graywsgi.speedups.compiled():
        pytest.skip("the compiled fast path is not built")
    done = run_bench("bench/callgrind_steps.py", "--requests", "200", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    steps, route = report["steps"], report["route"]
    assert report["requests"] == [200, 400]
    # Every step of the request path was found and did some work, and the
    # named steps claim most of it: a function renamed in the C code would
    # drop its step to 0 and move its count into the unnamed rest.
    assert all(count > 0 for name, count in steps.items() if "handed to the server" not in name), steps
    rest = steps["the entry points' own code, and calls too small to name"]
    assert 0 <= rest < 0.2 * report["total"], steps
    router = next(count for name, count in steps.items() if name.startswith("Router + Guard"))
    own = route["the step's own code, and calls too small to name"]
    assert all(count > 0 for count in route.values()), route
    assert own < 0.25 * router, route


def test_budget_summary_quotes_the_cold_cache_misses_beside_the_server_figures() -> None:
    budgets = load_bench_module("budgets")
    server = {"ratios": {"sync": 0.96, "gthread": 0.90}, "added_us": {"sync": 12.0, "gthread": 30.0}}
    in_worker = {"variants": {"core chain": {"added_us": 9.5}}}
    cold = {"compiled": {"L2 misses, code": 700.0, "L2 misses, data": 456.0}}
    rows = budgets.budget_rows({budgets.RULES[10]: 1.0, budgets.RULES[10_000]: 1.0}, {}, [], server, in_worker,
                               None, main_path=budgets.COMPILED, cold=cold)
    by_name = {name: (measured, passed) for name, _limit, measured, passed in rows}
    sync, gthread = (by_name[f"gunicorn req/s with core chain, {wc}"] for wc in ("sync", "gthread"))
    expected = "96.0 % of plain Flask (+12.0 µs/request); cold caches: +1,156 L2 misses/request (bench/cold_cache.py)"
    assert sync == (expected, True)
    assert gthread[1] is False and gthread[0].endswith("+1,156 L2 misses/request (bench/cold_cache.py)")
    measured, passed = by_name["core chain inside a gunicorn worker"]
    assert passed is False and measured.startswith("+9.5 µs per call") and "+1,156 L2 misses" in measured
    # Without the count (--no-cold-cache), no note.
    rows = budgets.budget_rows({budgets.RULES[10]: 1.0, budgets.RULES[10_000]: 1.0}, {}, [], server, in_worker,
                               None, main_path=budgets.COMPILED)
    assert all("L2 misses" not in measured for _name, _limit, measured, _passed in rows)


def test_budget_summary_quotes_the_fused_floor_from_the_same_rounds() -> None:
    budgets = load_bench_module("budgets")
    server = {"ratios": {"sync": 0.93, "gthread": 0.94}, "added_us": {"sync": 19.9, "gthread": 17.1},
              "lean": {"fused": {"sync": 0.977, "gthread": 0.969}}}
    rows = budgets.budget_rows({budgets.RULES[10]: 1.0, budgets.RULES[10_000]: 1.0}, {}, [], server, None,
                               None, main_path=budgets.COMPILED)
    by_name = {name: (measured, passed) for name, _limit, measured, passed in rows}
    assert by_name["gunicorn req/s with core chain, sync"] == (
        "93.0 % of plain Flask (+19.9 µs/request); fused floor 97.7 %", False)
    assert by_name["gunicorn req/s with core chain, gthread"][0].endswith("; fused floor 96.9 %")


def test_budget_summary_quotes_the_interval_of_the_median_when_the_run_has_one() -> None:
    budgets = load_bench_module("budgets")
    server = {"ratios": {"sync": 0.96, "gthread": 0.94}, "added_us": {"sync": 9.0, "gthread": 17.0},
              "intervals": {"sync": "94.1-97.3%", "gthread": "n/a"}}
    rows = budgets.budget_rows({budgets.RULES[10]: 1.0, budgets.RULES[10_000]: 1.0}, {}, [], server, None,
                               None, main_path=budgets.COMPILED)
    by_name = {name: (measured, passed) for name, _limit, measured, passed in rows}
    assert by_name["gunicorn req/s with core chain, sync"] == (
        "96.0 % of plain Flask (+9.0 µs/request), median's 95 % CI 94.1-97.3%", True)
    assert by_name["gunicorn req/s with core chain, gthread"] == (  # one round: no interval to quote
        "94.0 % of plain Flask (+17.0 µs/request)", False)


def test_ab_refuses_an_unknown_worker_class_before_starting_a_server() -> None:
    with pytest.raises(ValueError, match="worker_classes: expected one of sync, gthread, got 'eventlet'"):
        _gunicorn_ab().run(quick=True, worker_classes=("gthread", "eventlet"))


def test_ab_runs_only_the_worker_class_asked_for() -> None:
    done = run_bench("bench/gunicorn_ab.py", "--quick", "--worker-class", "gthread", "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["samples"]) == list(report["ratios"]) == ["gthread"]
    assert "gunicorn gthread plain:" in done.stderr and "gunicorn sync" not in done.stderr
    assert report["intervals"] == {"gthread": "n/a"}  # one round: too few for a 95 % interval


def test_ab_control_loads_a_second_plain_server_in_every_round() -> None:
    done = run_bench("bench/gunicorn_ab.py", "--quick", "--control", "--also", "fused", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for worker_class in ("sync", "gthread"):
        runs = report["samples"][worker_class]
        assert len(runs["plain"]) == len(runs["chained"]) == len(runs["control"]) == len(runs["fused"]) == 1
        assert min(runs["control"]) > 0 and min(runs["fused"]) > 0
        # The control's verdict is the paired ratio of A' to A, as for B.
        assert report["controls"][worker_class] == pytest.approx(runs["control"][0] / runs["plain"][0])
        # --also: the hand-written middleware's server is paired with A the same way.
        assert report["lean"]["fused"][worker_class] == pytest.approx(runs["fused"][0] / runs["plain"][0])
        assert report["ratios"][worker_class] == pytest.approx(runs["chained"][0] / runs["plain"][0])


def test_valgrind_benches_refuse_a_missing_tool_or_a_second_run_no_longer_than_the_first() -> None:
    callgrind = load_bench_module("callgrind")
    with pytest.raises(RuntimeError, match="no-such-valgrind-tool is not installed"):
        callgrind.check_runs(100, 200, ("no-such-valgrind-tool",))
    with pytest.raises(ValueError, match=r"the second run must serve more requests than the first \(200 >= 200\)"):
        callgrind.check_runs(200, 200, ())
    callgrind.check_runs(100, 200, ())  # a longer second run: nothing to refuse


def test_ab_refuses_an_unknown_lean_middleware_before_starting_a_server() -> None:
    with pytest.raises(ValueError, match="also: expected one of fused, reference, got 'nginx'"):
        _gunicorn_ab().run(quick=True, also=["nginx"])


def test_over_plain_ranks_every_function_by_the_misses_the_chain_adds() -> None:
    counts = load_bench_module("in_server_counts")
    per_function = {
        "plain": {"_PyEval_EvalFrameDefault": (90_000.0, 400.0), "flask_only": (500.0, 30.0)},
        "chained": {
            "_PyEval_EvalFrameDefault": (90_040.0, 537.0),  # barely more work, much more fetched again
            "__pyx_f_8graywsgi_6layers_8pipeline_8Pipeline__call": (320.0, 31.0),  # only in the chain
        },
    }
    assert counts.grown_over_plain(per_function, 2) == [
        ("_PyEval_EvalFrameDefault", 40.0, 137.0),
        ("graywsgi.layers.pipeline.Pipeline._call", 320.0, 31.0),
    ]
    assert counts.grown_over_plain(per_function, 5)[-1] == ("flask_only", -500.0, -30.0)  # only in plain: counted too


def test_in_server_counts_refuses_an_unknown_worker_class_before_starting_a_server() -> None:
    with pytest.raises(ValueError, match="unknown worker class 'eventlet'; expected one of sync, gthread"):
        load_bench_module("in_server_counts").run(quick=True, worker_class="eventlet")


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="counts in real gunicorn workers: once per test run is enough")
def test_in_server_counts_quick_run_counts_each_request_inside_a_gunicorn_worker() -> None:
    import graywsgi.speedups

    done = run_bench("bench/in_server_counts.py", "--quick", "--functions", "5", "--over-plain", "8", "--json",
                     timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["requests"] == [50, 150]
    assert report["worker_class"] == "sync"
    grown = report["over_plain"]
    assert len(grown) == 8 and [m for _n, _i, m in grown] == sorted((m for _n, _i, m in grown), reverse=True)
    assert grown[0][2] > 0  # the chain's code is fetched somewhere
    plain, chained = report["per_request"]["plain"], report["per_request"]["chained"]
    # A request in a worker is gunicorn's parsing and writing and Flask's
    # work: several hundred thousand instructions; the chain's run on top.
    assert 100_000 < plain["instructions"] < chained["instructions"]
    assert chained["L1i misses"] > plain["L1i misses"] > 0
    own = report["graywsgi_code"]
    # No graywsgi code on the plain server's request path (the collector may
    # visit graywsgi's objects now and then).
    assert own["plain"]["instructions"] <= own["chained"]["instructions"] / 10
    top = report["functions"]
    if graywsgi.speedups.compiled():  # the worker ran the compiled modules: found by their C names
        assert own["chained"]["instructions"] > 1_000 and own["chained"]["L1i misses"] > 10
        assert len(top) == 5 and [m for _n, _i, m in top] == sorted((m for _n, _i, m in top), reverse=True)
        assert any(name.startswith("graywsgi.layers.") for name, _i, _m in top), top
    else:
        assert own["chained"]["instructions"] == 0 and top == []


@pytest.mark.skipif(os.environ.get("GRAYWSGI_PURE_PYTHON", "") not in ("", "0"),
                    reason="counts in real gunicorn workers: once per test run is enough")
def test_in_server_counts_serves_one_life_from_a_gthread_worker(tmp_path: Path) -> None:
    """``--worker-class gthread``: one life (of the four a run needs) in a
    real gthread worker with 4 threads, counted through the chain."""
    import graywsgi.speedups

    counts = load_bench_module("in_server_counts")
    out = counts.life("chained", 20, 5, tmp_path, 600.0, "gthread")
    command = next(line for line in out.read_text().splitlines() if line.startswith("cmd:"))
    assert "--worker-class gthread --workers 1 --threads 4" in command
    assert counts.totals(out)["Ir"] > 1_000_000
    own = {name: ir for name, (ir, _misses) in counts.by_function(out, 120.0).items() if counts.OWN.search(name)}
    if graywsgi.speedups.compiled():
        assert sum(own.values()) > 25 * 1_000  # 25 requests through the compiled chain, thousands each
    else:
        assert own == {}


@pytest.mark.parametrize(("function", "shown"), [
    ("__pyx_f_8graywsgi_6layers_11identifiers_16IdentifierReader_parse",
     "graywsgi.layers.identifiers.IdentifierReader.parse"),
    ("__pyx_f_8graywsgi_6layers_8pipeline__new_exchange", "graywsgi.layers.pipeline._new_exchange"),
    ("__pyx_tp_dealloc_8graywsgi_6layers_5scope_RequestScope", "graywsgi.layers.scope.RequestScope (tp_dealloc)"),
    ("__pyx_pw_8graywsgi_6layers_5scope_3_close", "graywsgi.layers.scope._close (pw)"),
    ("__pyx_pw_8graywsgi_8httputil_11request_ids_1new_request_id", "graywsgi.httputil.request_ids.new_request_id (pw)"),
    ("__pyx_pf_8graywsgi_6layers_5scope_12RequestScope_24__next__", "graywsgi.layers.scope.RequestScope.__next__ (pf)"),
    ("__pyx_pw_8graywsgi_6layers_5scope_12RequestScope_9__call__", "graywsgi.layers.scope.RequestScope.__call__ (pw)"),
    ("_PyType_Lookup", "_PyType_Lookup"),
    ("__Pyx_PyObject_FastCallDict.constprop.0", "__Pyx_PyObject_FastCallDict.constprop.0"),
])
def test_cold_cache_names_cython_functions_by_their_python_path(function: str, shown: str) -> None:
    assert load_bench_module("cold_cache").readable(function) == shown


def test_compare_builds_alternates_two_checkouts_and_reports_their_ratio() -> None:
    """The same checkout twice: two pairs of real processes, each case's
    median over its floor for both, and the ratio of the two."""
    done = run_bench("bench/compare_builds.py", ".", ".", "--pairs", "2", "--rounds", "2", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["first"] == result["second"] == str(ROOT)
    for label in ("first", "second"):
        for case in ("core chain", "core chain + Metrics"):
            runs = result["runs_ns"][label][case]
            assert len(runs) == 2 and all(ns > 0 for ns in runs)
            assert min(runs) <= result["medians_ns"][label][case] <= max(runs)
    for case in ("core chain", "core chain + Metrics"):
        expected = result["medians_ns"]["second"][case] / result["medians_ns"]["first"][case]
        assert result["ratio"][case] == pytest.approx(expected)
    # Metrics' datagram costs something on top of the chain in every process.
    assert all(m > c for m, c in zip(result["runs_ns"]["first"]["core chain + Metrics"],
                                     result["runs_ns"]["first"]["core chain"]))
