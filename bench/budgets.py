"""The budget summary ``bench/run.py`` ends with: each budget, its limit, PASS or MISS, and the figure.

The in-process budgets come from same-run medians: the main run's for the
path it ran (compiled or plain Python, as ``graywsgi.speedups`` says), and a
second process's for the other path, which times the chain's cases again
with its own floor (``bench/run.py --only-chain``). The gunicorn budgets
come from ``bench/gunicorn_ab.py``'s paired rounds and ``bench/in_worker.py``;
instruction counts, where callgrind ran, are quoted beside the timings.
"""

from __future__ import annotations

import typing as t

Row = t.Tuple[str, str, str, t.Optional[bool]]

#: Case names, as bench/run.py times them.
FLOOR = "bare WSGI (floor)"
FUSED = "fused floor: one class, a subset of the core chain's work"
CORE = "core chain: Extraction + Router + Guard, metrics off"
CORE_METRICS = "core chain + Metrics (dogstatsd, UDP)"
IN_APP_FLOOR = "Flask request, then bare callable"
IN_APP_CORE = "Flask request, then core chain"
PV_FLOOR = "[pv] floor (bare app, same environ copy)"
PV_OURS = "[pv] graywsgi PreValidation"
PV_CORE = "[pv] openapi-core, as middleware"
PV_CORE_ONLY = "[pv] openapi-core, validate_request only"
RULES = {
    10: "Extraction + Router, 10 host/prefix rules",
    1_000: "Extraction + Router, 1,000 rules",
    10_000: "Extraction + Router, 10,000 rules",
}
COMPILED, PURE = "compiled", "pure Python"
#: Mode -> (core chain limit, core chain + metrics limit) in ns; None: no budget.
CHAIN_LIMITS: dict[str, tuple[float, float | None]] = {COMPILED: (2_500, 6_000), PURE: (5_000, None)}


def instructions_note(instructions: dict[str, dict[str, int]] | None, mode: str, case: str) -> str:
    """``; 33,000 instructions (x9.1 the floor)`` where callgrind counted ``case`` in ``mode``."""
    counted = (instructions or {}).get(mode, {})
    if case not in counted or FLOOR not in counted:
        return ""
    return f"; {counted[case]:,} instructions/request, x{counted[case] / counted[FLOOR]:.1f} the floor's"


def cold_note(cold: dict[str, dict[str, float]] | None) -> str:
    """``; 1,156 L2 misses/request with cold caches`` where bench/cold_cache.py counted the compiled chain."""
    added = (cold or {}).get(COMPILED)
    if not added:
        return ""
    return (f"; cold caches: +{added['L2 misses, code'] + added['L2 misses, data']:,.0f} L2 misses/request"
            f" (bench/cold_cache.py)")


def chain_rows(chain: dict[str, dict[str, float]], instructions: dict[str, dict[str, int]] | None,
               main: dict[str, float], main_path: str) -> list[Row]:
    """The core chain's in-process budgets, for each path (``chain``: mode -> case -> median ns;
    ``main``: the main run's medians, which ran ``main_path``)."""
    rows: list[Row] = []
    for mode, (core_limit, metrics_limit) in CHAIN_LIMITS.items():
        med = chain.get(mode)
        if med is None:
            rows.append((f"core chain over bare, {mode}", f"<= {core_limit / 1000:g} µs", "not measured"
                         " (the compiled fast path is not built)" if mode == COMPILED else "not measured", None))
            continue
        added = med[CORE] - med[FLOOR]
        extra = ""
        if mode == COMPILED:
            extra = f"; fused floor: {(med[FUSED] - med[FLOOR]) / 1000:.2f} µs" if FUSED in med else ""
            if mode == main_path and IN_APP_CORE in main:
                extra += f"; after a Flask request: {(main[IN_APP_CORE] - main[IN_APP_FLOOR]) / 1000:.2f} µs"
        rows.append((f"core chain over bare, {mode}", f"<= {core_limit / 1000:g} µs",
                     f"{added / 1000:.2f} µs{extra}{instructions_note(instructions, mode, CORE)}", added <= core_limit))
    for mode, (_core_limit, metrics_limit) in CHAIN_LIMITS.items():
        med = chain.get(mode)
        if metrics_limit is None or med is None:
            if metrics_limit is not None:
                rows.append((f"core chain + metrics over bare, {mode}", f"<= {metrics_limit / 1000:g} µs",
                             "not measured (the compiled fast path is not built)", None))
            continue
        added = med[CORE_METRICS] - med[FLOOR]
        rows.append((f"core chain + metrics over bare, {mode}", f"<= {metrics_limit / 1000:g} µs",
                     f"{added / 1000:.2f} µs (metrics +{(med[CORE_METRICS] - med[CORE]) / 1000:.2f} µs, one UDP datagram)"
                     f"{instructions_note(instructions, mode, CORE_METRICS)}", added <= metrics_limit))
    return rows


def budget_rows(main: dict[str, float], chain: dict[str, dict[str, float]], memory: list[dict[str, float]],
                server: dict[str, t.Any] | None, in_worker: dict[str, t.Any] | None,
                instructions: dict[str, dict[str, int]] | None, *, main_path: str,
                server_note: str = "not run (--no-server)", scaling: dict[str, t.Any] | None = None,
                cold: dict[str, dict[str, float]] | None = None) -> list[Row]:
    """(budget, limit, measured, passed); ``passed`` is ``None`` for what this run did not measure.

    :param main: the main run's medians (ns) by case.
    :param chain: mode -> the chain cases' medians (ns), from the main run and the other path's run.
    :param main_path: the path the main run timed (:data:`COMPILED` or :data:`PURE`).
    :param cold: mode -> what the chain adds per request with cold caches (``bench/cold_cache.py``).
    """
    rows = chain_rows(chain, instructions, main, main_path)
    if PV_OURS in main:
        ours = main[PV_OURS] - main[PV_FLOOR]
        peer = main[PV_CORE] - main[PV_FLOOR]
        only = main[PV_CORE_ONLY] - main[PV_FLOOR]
        rows.append(("pre-validation vs openapi-core", ">= 20x cheaper",
                     f"{peer / ours:.1f}x as middleware, {only / ours:.1f}x validate_request only", min(peer, only) / ours >= 20))
    ratio = main[RULES[10_000]] / main[RULES[10]]
    rows.append(("10,000 rules vs 10", "<= 1.2x", f"{ratio:.3f}x", ratio <= 1.2))
    for shape, shape_ratio in (scaling or {}).get("ratios", {}).items():
        if scaling["indexed"][shape]:  # type: ignore[index]  # set when ratios are
            rows.append((f"10,000 {shape} rules vs 10", "<= 1.2x", f"{shape_ratio:.3f}x (bench/rule_scaling.py)",
                         shape_ratio <= 1.2))
        else:
            rows.append((f"10,000 {shape} rules vs 10", "not indexed", f"{shape_ratio:,.0f}x (scanned; docs/routing.md)",
                         None))
    for worker_class in ("sync", "gthread"):
        name = f"gunicorn req/s with core chain, {worker_class}"
        if not server or worker_class not in server["ratios"]:
            rows.append((name, ">= 95 %", server_note, None))
            continue
        ratio = server["ratios"][worker_class]
        added = server.get("added_us", {}).get(worker_class)
        text = f"{ratio * 100:.1f} % of plain Flask" + (f" (+{added:.1f} µs/request)" if added is not None else "")
        interval = server.get("intervals", {}).get(worker_class)
        if interval not in (None, "n/a"):  # the median's distribution-free interval (bench/gunicorn_ab.py)
            text += f", median's 95 % CI {interval}"
        fused = server.get("lean", {}).get("fused", {}).get(worker_class)
        if fused is not None:  # the hand-written fused floor, in the same rounds: what lean middleware keeps
            text += f"; fused floor {fused * 100:.1f} %"
        text += cold_note(cold)
        rows.append((name, ">= 95 %", text, ratio >= 0.95))
    if in_worker:
        core = in_worker["variants"]["core chain"]["added_us"]
        rows.append(("core chain inside a gunicorn worker", "<= 8 µs",
                     f"+{core:.1f} µs per call over Flask alone (bench/in_worker.py){cold_note(cold)}", core <= 8))
    else:
        rows.append(("core chain inside a gunicorn worker", "<= 8 µs", server_note, None))
    if memory:
        first, last = memory[0], memory[-1]
        traced = last["traced_kib"] - first["traced_kib"]
        rss = last["rss_kib"] - first["rss_kib"]
        flat = traced <= 256 and rss <= 4_096
        rows.append(("memory flat (full chain)", "traced +<=256 KiB, RSS +<=4 MiB",
                     f"after {last['requests']:,.0f} req: traced {traced:+.1f} KiB, RSS {rss:+,.0f} KiB", flat))
    else:
        rows.append(("memory flat (full chain)", "flat", "not run", None))
    return rows


def summary(rows: list[Row]) -> str:
    """The rows as the table bench/run.py prints."""
    lines = ["budget summary (DESIGN §5 and the issue's budgets; same-run medians)",
             f"{'budget':44} {'limit':32} {'result':6} measured"]
    for budget, limit, measured, passed in rows:
        verdict = "n/a" if passed is None else ("PASS" if passed else "MISS")
        lines.append(f"{budget:44} {limit:32} {verdict:6} {measured}")
    return "\n".join(lines)
