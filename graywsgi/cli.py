"""
Command line
============

``graywsgi`` is the operator's entry point.

.. code-block:: text

    graywsgi --version
    graywsgi demo [--port PORT] [--percent P]

Exit codes: 0 success; 1 the command ran and failed (for example the port
is taken); 2 the command line is wrong.
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
    from graywsgi import __version__

    parser = argparse.ArgumentParser(
        prog="graywsgi", description="Gray (canary) releases for WSGI applications."
    )
    parser.add_argument("--version", action="version", version=f"graywsgi {__version__}")
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
    return parser


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the ``graywsgi`` command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from graywsgi.demo import serve

        return serve(port=args.port, percent=args.percent)
    raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
