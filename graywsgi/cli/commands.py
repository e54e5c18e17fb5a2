"""
Command line
============

``graywsgi`` is the operator's entry point.

.. code-block:: text

    graywsgi --version
    graywsgi demo [--port PORT] [--percent P]
    graywsgi rollback --state LOCATION [--reason TEXT]
    graywsgi resume --state LOCATION [--reason TEXT]
    graywsgi state --state LOCATION [--json]

    graywsgi rollout status|start|advance|pause|resume|promote|rollback --rules FILE --state LOCATION
    graywsgi simulate --rules FILE [--ids FILE | --generate N]
    graywsgi validate --openapi FILE [--rules FILE]
    graywsgi checklist run FILE [--approver NAME]... [--report PATH] [--json]

``LOCATION`` is the shared rollout state the workers read
(:mod:`graywsgi.state.rollout_state`): a file path, or ``redis://host:port/db#key``.
``rollback`` sets the kill switch -- every canary share becomes 0 on every
worker that reads that state, within its ``check_interval`` -- and
``resume`` clears it.

Exit codes: 0 success; 1 the command ran and failed or was refused (for
example the port is taken, a gate failed); 2 the command line is wrong; 3
``rollout advance`` got no answer from a serving worker in time. See
:mod:`graywsgi.cli.rollout`.
"""

from __future__ import annotations

import argparse
import math
import sys
import typing as t

__all__ = ["main", "build_parser"]


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise argparse.ArgumentTypeError(f"{text!r} is not from 0 to 100")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not from 0 to 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the ``graywsgi`` argument parser."""
    from graywsgi import speedups
    from graywsgi._version import __version__

    parser = argparse.ArgumentParser(
        prog="graywsgi", description="Gray (canary) releases for WSGI applications."
    )
    parser.add_argument("--version", action="version", version=f"graywsgi {__version__} ({speedups.describe()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="serve a Flask demo app behind the gray chain on 127.0.0.1",
        description="Serve a Flask app with a stable and a canary handler behind the "
        "gray chain on 127.0.0.1 and print curl lines that show the routing.",
    )
    demo.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    demo.add_argument(
        "--percent", type=_percent, default=15.0, help="share of users on canary, 0-100 (default 15)"
    )
    for name, help_text in (
        ("rollback", "set the kill switch: every canary share becomes 0, on every worker"),
        ("resume", "clear the kill switch: configured shares apply again"),
        ("state", "show the shared rollout state: kill switch and breakers"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        command.add_argument(
            "--state", required=True, metavar="LOCATION",
            help="the state the workers read: a file path or redis://host:port/db#key",
        )
        if name == "state":
            command.add_argument("--json", action="store_true", help="print JSON")
        else:
            command.add_argument("--reason", default=f"manual {name} from the command line",
                                 help="why (kept in the state and logged by every worker)")
    from graywsgi.cli.validate import add_validate_parser
    from graywsgi.cli.rollout import add_rollout_parser, add_simulate_parser

    add_validate_parser(commands)
    add_rollout_parser(commands)
    add_simulate_parser(commands)

    from graywsgi.cli.checklist import add_checklist_parser

    add_checklist_parser(commands)
    return parser


def _run_state_command(args: argparse.Namespace) -> int:
    import logging

    from graywsgi.errors import GrayError
    from graywsgi.state.locations import open_state_store

    # The workers log what they see; here the printed result says it all.
    logging.getLogger("graywsgi").setLevel(logging.CRITICAL)
    try:
        store = open_state_store(args.state, check_interval=0, timeout=2.0)
        if args.command == "rollback":
            state = store.rollback(args.reason)
        elif args.command == "resume":
            state = store.resume(args.reason)
        else:
            state = store.fetch()
    except (GrayError, OSError) as exc:
        print(f"graywsgi {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. Redis unreachable while writing
        print(f"graywsgi {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(state.to_json())
        return 0
    print(f"kill switch: {'SET (canary shares are 0)' if state.killed else 'clear'}"
          f"{f' -- {state.reason}' if state.reason else ''} (revision {state.revision})")
    for route, route_state in sorted(state.routes.items()):
        print(f"breaker {route}: {'open' if route_state.open else 'closed'} -- {route_state.reason}")
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the ``graywsgi`` command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from graywsgi.cli.demo import serve

        return serve(port=args.port, percent=args.percent)
    if args.command in ("rollback", "resume", "state"):
        return _run_state_command(args)
    if args.command == "validate":
        from graywsgi.cli.validate import run_validate

        return run_validate(args)
    if args.command == "checklist":
        from graywsgi.cli.checklist import run_checklist

        return run_checklist(args)
    if args.command == "rollout":
        from graywsgi.cli.rollout import run_rollout

        return run_rollout(args)
    if args.command == "simulate":
        from graywsgi.cli.rollout import run_simulate

        return run_simulate(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
