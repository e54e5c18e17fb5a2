"""
``graywsgi rollout`` and ``graywsgi simulate``
==============================================

.. code-block:: text

    graywsgi rollout status   --rules FILE --state LOCATION [--json]
    graywsgi rollout start    --rules FILE --state LOCATION [--actor NAME]
    graywsgi rollout advance  --rules FILE --state LOCATION [--actor NAME] [--wait SECONDS] [--force]
    graywsgi rollout pause|resume|promote|rollback --rules FILE --state LOCATION [--actor NAME]
    graywsgi simulate --rules FILE [--ids FILE | --generate N] [--host HOST] [--path PATH] [--header K:V]

``--state`` is the shared rollout state the workers read (a file path or
``redis://host:port/db#key``); ``--rules`` the rule file holding the plan.

``advance`` asks the serving workers to move the plan on: they hold the
sliding windows the next step's gate reads. It waits (``--wait``, default 30
s, with progress on stderr) until a worker has moved it or refused, and
prints the refusal (``gate failed: canary error rate 4.1 % vs stable 0.3 %,
margin 1 %``). ``--force`` moves on without the gate.

Exit codes: 0 done; 1 refused or failed (the reason is printed); 2 wrong
command line; 3 ``advance`` asked, but no worker answered within ``--wait``
(is the application receiving traffic?).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as t

from graywsgi.errors import GrayError

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from graywsgi.core.context import GrayContext

__all__ = ["add_rollout_parser", "run_rollout", "add_simulate_parser", "run_simulate"]

ACTIONS = ("status", "start", "advance", "pause", "resume", "promote", "rollback")
NO_ANSWER = 3


def add_rollout_parser(commands: t.Any) -> None:
    """Add ``rollout`` and its actions to the ``graywsgi`` sub-commands."""
    rollout = commands.add_parser(
        "rollout",
        help="move the rule file's rollout plan: status, start, advance, pause, resume, promote, rollback",
        description="Move the rollout plan of a rule file, in the shared state every worker reads.",
    )
    actions = rollout.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action in ACTIONS:
        parser = actions.add_parser(action, help=f"{action} the plan", description=f"{action.capitalize()} the plan.")
        parser.add_argument("--rules", required=True, help="the rule file holding the plan")
        parser.add_argument("--state", required=True, metavar="LOCATION",
                            help="the state the workers read: a file path or redis://host:port/db#key")
        parser.add_argument("--json", action="store_true", help="print JSON")
        if action != "status":
            parser.add_argument("--actor", default="cli", help="who does this (kept in the state and logs)")
        if action == "advance":
            parser.add_argument("--wait", type=float, default=30.0,
                                help="seconds to wait for a serving worker to check the gate (default 30)")
            parser.add_argument("--force", action="store_true", help="move on without checking the gate")


def _open(args: argparse.Namespace) -> t.Any:
    import logging

    from graywsgi.rules.files import load_rules
    from graywsgi.state.rollout import Rollout
    from graywsgi.state.locations import open_state_store

    logging.getLogger("graywsgi").setLevel(logging.CRITICAL)  # the printed result says it all
    rules = load_rules(args.rules)
    if rules.ruleset.plan is None:
        raise GrayError(f"{args.rules}: the rule file has no plan")
    return Rollout(rules.ruleset.plan, open_state_store(args.state, check_interval=0, timeout=2.0))


def _print_status(status: dict[str, t.Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, sort_keys=True))
        return
    steps = status["steps"]
    print(f"plan: {status['rule']} / {status['cluster']}: {status['status'].replace('_', ' ')}"
          f"{' (kill switch SET)' if status['killed'] else ''}")
    for index, name in enumerate(steps):
        marker = "->" if index == status["step"] and status["status"] != "not_started" else "  "
        print(f"  {marker} {index + 1}. {name}")
    weight = status["weight"]
    print(f"weight of {status['cluster']}: {'as configured' if weight is None else f'{weight:g} %'}")
    if status["refusal"]:
        print(f"last refusal: {status['refusal']}")


def run_rollout(args: argparse.Namespace) -> int:
    """Run ``graywsgi rollout ACTION``; return the exit code."""
    try:
        rollout = _open(args)
        if args.action == "status":
            _print_status(rollout.status(), args.json)
            return 0
        if args.action == "advance" and not args.force:
            return _advance_through_workers(rollout, args)
        if args.action == "advance":
            rollout.advance(args.actor, force=True)
        else:
            getattr(rollout, args.action)(args.actor)
    except (GrayError, OSError, ValueError) as exc:
        print(f"graywsgi rollout {args.action}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. Redis unreachable
        print(f"graywsgi rollout {args.action}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _print_status(rollout.status(), args.json)
    return 0


def _advance_through_workers(rollout: t.Any, args: argparse.Namespace) -> int:
    before = rollout.plan_state()
    asked = rollout.request_advance(args.actor)
    print("asked the serving workers to advance; waiting for one to check the gate", end="",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.wait
    next_dot = time.monotonic() + 1
    while time.monotonic() < deadline:
        state = rollout.state.fetch().plan
        if state is not None and state.step != before.step:
            print(" done", file=sys.stderr)
            _print_status(rollout.status(), args.json)
            return 0
        if state is not None and state.refusal_at is not None and state.refusal_at >= asked:
            print(" refused", file=sys.stderr)
            print(f"graywsgi rollout advance: {state.refusal}", file=sys.stderr)
            return 1
        if time.monotonic() >= next_dot:
            print(".", end="", file=sys.stderr, flush=True)
            next_dot += 1
        time.sleep(0.1)
    print(" no answer", file=sys.stderr)
    print(f"graywsgi rollout advance: no worker checked the gate within {args.wait:g} s; is the application "
          "receiving traffic? (--force moves on without the gate)", file=sys.stderr)
    return NO_ANSWER


# --- simulate -----------------------------------------------------------------------


def add_simulate_parser(commands: t.Any) -> None:
    """Add ``simulate`` to the ``graywsgi`` sub-commands."""
    parser = commands.add_parser(
        "simulate",
        help="show the share each route gets, per plan step, for a set of user ids",
        description="Decide a request for many gray ids and print the share per route -- with the "
        "configured weights and at each plan step -- and check that no user flips back to stable "
        "when the plan's weight rises.",
    )
    parser.add_argument("--rules", required=True, help="the rule file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ids", help="a file with one gray id per line")
    source.add_argument("--generate", type=int, default=10_000, metavar="N",
                        help="use N generated ids user-0 .. user-(N-1) (default 10000)")
    parser.add_argument("--host", default="localhost", help="the request's host (default localhost)")
    parser.add_argument("--path", default="/", help="the request's path (default /)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="a request header")
    parser.add_argument("--json", action="store_true", help="print JSON")


def simulated_requests(
    ids: t.Sequence[str], host: str, path: str, headers: t.Mapping[str, str]
) -> list[tuple[WSGIEnvironment, GrayContext] | str]:
    """One request per gray id (``X-Gray-ID``, plus ``headers``), read by a
    real :class:`~graywsgi.layers.extraction.Extraction` layer: its environ and gray
    context, as the Router behind it would see them, or the status
    (``"400"``) when Extraction refuses the request."""
    from werkzeug.test import create_environ

    from graywsgi.core.context import ENVIRON_KEY
    from graywsgi.layers.extraction import Extraction

    seen: list[WSGIEnvironment] = []

    def router_seat(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen.append(environ)
        start_response("204 No Content", [])
        return []

    extraction = Extraction(router_seat)
    out: list[tuple[WSGIEnvironment, GrayContext] | str] = []
    for gray_id in ids:
        environ = create_environ(path, base_url=f"http://{host}/", headers={**headers, "X-Gray-ID": gray_id})
        statuses: list[str] = []
        response = extraction(environ, lambda status, _headers, _exc=None: statuses.append(status))  # type: ignore[arg-type]
        for _chunk in response:
            pass
        close = getattr(response, "close", None)
        if close is not None:
            close()
        if seen:
            inner = seen.pop()
            out.append((inner, inner[ENVIRON_KEY]))
        else:
            out.append(statuses[0].split(" ", 1)[0] if statuses else "500")
    return out


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``graywsgi simulate``; return the exit code."""
    from graywsgi.rules.files import load_rules
    from graywsgi.rules.decision import request_facts
    from graywsgi.layers.route_step import trusted_weight

    try:
        rules = load_rules(args.rules)
        if args.ids:
            with open(args.ids, encoding="utf-8") as handle:
                ids = [line.strip() for line in handle if line.strip()]
        else:
            if args.generate < 1:
                raise ValueError("--generate needs a positive number")
            ids = [f"user-{n}" for n in range(args.generate)]
        headers = {}
        for item in args.header:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--header {item!r}: use NAME:VALUE")
            headers[name.strip()] = value.strip()
    except (GrayError, OSError, ValueError) as exc:
        print(f"graywsgi simulate: {exc}", file=sys.stderr)
        return 1
    requests = simulated_requests(ids, args.host, args.path, headers)
    plan = rules.ruleset.plan
    scenarios: list[tuple[str, tuple[str, str, float] | None]] = [("configured", None)]
    if plan is not None:
        for index, step in enumerate(plan.steps):
            weight = plan.weight_at(index)
            scenarios.append((f"step {index + 1} {step.name}", None if weight is None
                              else (plan.rule, plan.cluster, weight)))
    rows: list[dict[str, t.Any]] = []
    previous: set[str] | None = None
    previous_weight = -1.0
    flipped_back = 0
    for done, (label, plan_weight) in enumerate(scenarios):
        routes: dict[str, set[str]] = {}
        for gray_id, request in zip(ids, requests):
            if isinstance(request, str):  # Extraction refused it: the middleware answers 4xx
                routes.setdefault(request, set()).add(gray_id)
                continue
            environ, context = request
            # The arguments graywsgi.layers.route_step.RouteStep.route passes.
            decision = rules.decide(
                request_facts(environ, context),
                canary_weight=trusted_weight(environ) if "HTTP_X_CANARY_WEIGHT" in environ else None,
                plan_weight=plan_weight,
            )
            route = "404" if decision is None else decision.route
            routes.setdefault(route, set()).add(gray_id)
        shares = {route: len(members) / len(ids) for route, members in sorted(routes.items())}
        rows.append({"scenario": label, "shares": shares})
        if plan is not None and plan_weight is not None:
            current = routes.get(plan.cluster, set())
            if previous is not None and plan_weight[2] >= previous_weight:
                flipped_back += len(previous - current)
            previous, previous_weight = current, plan_weight[2]
        print(f"simulated {done + 1}/{len(scenarios)}", file=sys.stderr)
    result = {"ids": len(ids), "rows": rows, "flipped_back": flipped_back}
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        routes_seen = sorted({route for row in rows for route in row["shares"]})
        print(f"{len(ids)} ids, host {args.host}, path {args.path}")
        print(f"{'scenario':32}" + "".join(f"{route:>12}" for route in routes_seen))
        for row in rows:
            print(f"{row['scenario']:32}" + "".join(f"{row['shares'].get(r, 0) * 100:11.2f}%" for r in routes_seen))
        if plan is not None:
            verdict = "no user flips back" if flipped_back == 0 else f"{flipped_back} users flip back"
            print(f"as the plan's weight rises: {verdict}")
    return 0 if flipped_back == 0 else 1
