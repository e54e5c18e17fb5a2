"""Where the compiled core chain's instructions go, step by step (valgrind's callgrind).

Run from the repository root (``valgrind`` is a Debian package; the
compiled fast path must be built)::

    python bench/callgrind_steps.py              # 5,000 requests
    python bench/callgrind_steps.py --requests 1000 --json

``bench/callgrind.py`` gives the chain's total per request; this splits
it. The core chain (``bench/run.py``'s case: Extraction + Router + Guard,
every request to the canary route, metrics off), served by
``bench/callgrind.py``'s child, runs under ``valgrind --tool=callgrind``
with counting switched on only inside the request's
three entry points -- the pipeline's WSGI call, the body's iteration and
its ``close()`` -- so Python's start-up and the benchmark loop are not
counted. ``callgrind_annotate --tree=calling`` then lists what each entry
point called, with each callee's inclusive count; a table maps them to
the steps of the request path (``graywsgi/layers/pipeline.py``) and
divides by the number of requests. What no row claims is the entry
points' own code (the pipeline's bookkeeping) and the calls too small to
name; the rows and the rest add up to the total.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Counting is on inside these compiled functions (the request's entry points).
ENTRY_POINTS = (
    "__pyx_pw_8graywsgi_6layers_8pipeline_8Pipeline_7__call__",
    # The C function, not its Python wrapper: built profile-guided, Cython's
    # call helper inlines the wrapper where the server calls close().
    "*RequestScope_close",
    "*RequestScope_23__iter__",
    "*RequestScope*__next__*",
)
#: The entry points whose callees are the steps.
CALLERS = ("8Pipeline__call", "12RequestScope_close")
#: (step, patterns of the callee's symbol), in the order a request meets them.
STEPS = (
    # A step's function inlined into its caller (the profile-guided build
    # inlines the exchange's constructor and Cython's call helper) is found
    # by what it calls in turn.
    ("the exchange: the request's response object",
     ("pipeline__new_exchange", "tp_new_8graywsgi_6layers_8pipeline_Exchange",
      "tp_new_8graywsgi_6layers_5scope_RequestScope")),
    ("Extraction: the identifiers read and checked, the context built", ("IdentifierReader_context",)),
    ("Router + Guard: decide, admit, record, snapshot for the retry", ("RouteStep_route",)),
    ("the context bound and released (contextvars)", ("PyContextVar_Set", "PyContextVar_Reset", "PyContextVar_Get")),
    ("the environ's graywsgi keys set and read (scope, context)", ("PyDict_SetItem", "PyDict_GetItem")),
    ("the application called (the bare floor's own work)", ("FastCallDict", "_PyFunction_Vectorcall")),
    ("lossless retry: the held status settled and sent", ("RouteStep_retry",)),
    ("the response handed to the server", ("RequestScope_finish",)),
    ("end of response: the outcome in the breaker and latency windows", ("Exchange__ended",)),
)
#: What the Router's step calls, split the same way (a second table).
ROUTE_STEPS = (
    ("the rule set in force", ("MemoryStore_current",)),
    ("the request's facts (host, path)", ("request_facts",)),
    ("the rules' decision (match, hash bucket)", ("CompiledRules_decide",)),
    ("the Guard's admission (kill switch, breaker)", ("Guard_admit", "Guard_now")),
    ("the decision recorded in the context and the environ", ("RouteStep_record",)),
    ("retryable? (method, body)", ("_retryable",)),
    ("the environ snapshot for the retry", ("PyDict_Copy",)),
    ("the application for the route", ("RouteStep_target",)),
)
_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?([*>])\s+(.*?)(?:\s+\(\d[\d,]*x\))?(?:\s+\[.*\])?\s*$")


def tree(requests: int, timeout: float) -> str:
    """``callgrind_annotate --tree=calling`` of a run of ``requests`` requests."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   *(f"--toggle-collect={name}" for name in ENTRY_POINTS),
                   sys.executable, str(HERE / "callgrind.py"), "--child", "core", str(requests)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env.pop("GRAYWSGI_PURE_PYTHON", None)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"valgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
        annotated = subprocess.run(["callgrind_annotate", "--tree=calling", "--inclusive=yes", out],
                                   capture_output=True, text=True, timeout=timeout)
        if annotated.returncode != 0:
            raise RuntimeError(f"callgrind_annotate failed:\n{annotated.stderr[-2000:]}")
        return annotated.stdout


def blocks(text: str) -> list[tuple[str, int, dict[str, int]]]:
    """Each function of the tree: its symbol, inclusive count and callees' inclusive counts."""
    found: list[tuple[str, int, dict[str, int]]] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count, kind = int(match.group(1).replace(",", "")), match.group(2)
        symbol = match.group(3).rsplit(":", 1)[-1]
        if kind == "*":
            found.append((symbol, count, {}))
        elif found:
            called = found[-1][2]
            called[symbol] = called.get(symbol, 0) + count
    return found


def callees(text: str, caller: str) -> tuple[int, dict[str, int]]:
    """The inclusive count of ``caller`` (a symbol's ending) and its
    callees' inclusive counts. callgrind files a compiled function's lines
    under each source they come from (its C file, the inlined CPython
    headers), so one function can be listed more than once: the callees of
    every listing are added up (they are different call sites), and the
    largest listing is taken as the function's own count."""
    matching = [block for block in blocks(text) if block[0].endswith(caller)]
    if not matching:
        raise RuntimeError(f"{caller} is not in callgrind's output: is the compiled fast path built?")
    called: dict[str, int] = {}
    for _, _, listed in matching:
        for symbol, count in listed.items():
            called[symbol] = called.get(symbol, 0) + count
    return max(block[1] for block in matching), called


def split(found: dict[str, int], steps: t.Sequence[tuple[str, tuple[str, ...]]]) -> tuple[dict[str, int], int]:
    """Each step's count, and what no step claims."""
    counted = dict.fromkeys((name for name, _ in steps), 0)
    rest = 0
    for symbol, count in found.items():
        for name, patterns in steps:
            if any(pattern in symbol for pattern in patterns):
                counted[name] += count
                break
        else:
            rest += count
    return counted, rest


def counts(requests: int, timeout: float) -> dict[str, int]:
    """Every step's and sub-step's count, and the totals, for one run."""
    text = tree(requests, timeout)
    pipeline, pipeline_callees = callees(text, CALLERS[0])
    closing, close_callees = callees(text, CALLERS[1])
    steps, _ = split({**pipeline_callees, **close_callees}, STEPS)
    route_total = sum(count for symbol, count in pipeline_callees.items() if symbol.endswith("9RouteStep_route"))
    _, route_callees = callees(text, "9RouteStep_route")
    route_steps, _ = split(route_callees, ROUTE_STEPS)
    found = {f"step:{name}": count for name, count in steps.items()}
    found.update({f"route:{name}": count for name, count in route_steps.items()})
    found["total"] = pipeline + closing
    found["route total"] = route_total
    return found


def run(requests: int = 5_000, timeout: float = 600.0) -> dict[str, t.Any]:
    """Instructions per request for each step: runs of ``requests`` and
    twice as many, the difference divided by ``requests`` (the first
    requests' one-time work cancels out, as in ``bench/callgrind.py``)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    low, high = counts(requests, timeout), counts(2 * requests, timeout)
    per = {key: round((high[key] - low[key]) / requests) for key in high}
    total = per["total"]
    rows = {name: per[f"step:{name}"] for name, _ in STEPS}
    rows["the entry points' own code, and calls too small to name"] = total - sum(rows.values())
    route_rows = {name: per[f"route:{name}"] for name, _ in ROUTE_STEPS}
    route_rows["the step's own code, and calls too small to name"] = per["route total"] - sum(route_rows.values())
    lines = [f"instructions per request inside the core chain, compiled (valgrind --tool=callgrind, runs of "
             f"{requests:,} and {2 * requests:,} requests, counting inside the pipeline's call, the body and close())",
             f"{'step':70} {'instructions':>12} {'share':>6}"]
    lines += [f"{name:70} {count:12,} {count / total:6.0%}" for name, count in rows.items()]
    lines.append(f"{'total':70} {total:12,}")
    lines += ["", f"{'of which the Router + Guard step':70} {'instructions':>12}"]
    lines += [f"{name:70} {count:12,}" for name, count in route_rows.items()]
    return {"requests": [requests, 2 * requests], "total": total, "steps": rows, "route": route_rows,
            "table": "\n".join(lines)}


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5_000, help="requests counted (default 5,000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.requests < 100:
        parser.error("--requests: must be at least 100")
    result = run(args.requests)
    print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2) if args.json else result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
