"""
``graywsgi validate``
=====================

The pre-check of a gray release (step 1 of the switch): runs the start-up
checks of :class:`~graywsgi.prevalidation.layer.PreValidation` on an OpenAPI
document and, with ``--rules``, loads a rule file with
:func:`graywsgi.rules.files.load_rules`, then prints each operation's gray rules
as a table.

.. code-block:: text

    graywsgi validate --openapi openapi.yaml [--rules rules.yaml]

With a rule file, the routes named by ``applies_to.routes`` must be clusters
of it. Exit codes: 0 everything is valid; 1 a problem was found (each is
printed on standard error, naming the file, line, operation and JSON
pointer); 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t

from graywsgi.errors import ConfigurationError

__all__ = ["add_validate_parser", "run_validate", "render_table"]

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi.prevalidation.gray_rules import OperationRules
    from graywsgi.rules.routing import CompiledRules


def add_validate_parser(subparsers: t.Any) -> None:
    """Add the ``validate`` command to ``graywsgi``'s sub-command parsers.

    :param subparsers: what :meth:`argparse.ArgumentParser.add_subparsers`
        returned.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check an OpenAPI document's x-gray-rules (and a rule file) and print them",
        description="Check a graywsgi rule file (rules, clusters and its rollout plan) and/or run "
        "PreValidation's start-up checks on an OpenAPI 3.0/3.1 document and print each operation's "
        "gray rules. Give --rules, --openapi or both.",
    )
    parser.add_argument("--openapi", metavar="FILE", help="the OpenAPI document (YAML or JSON)")
    parser.add_argument("--rules", metavar="FILE", help="a graywsgi rule file (YAML, JSON or TOML) to check too")


def run_validate(args: argparse.Namespace, out: t.TextIO | None = None, err: t.TextIO | None = None) -> int:
    """Run ``graywsgi validate``; return the exit code (0 valid, 1 not)."""
    from graywsgi.rules.files import load_rules
    from graywsgi.prevalidation.gray_rules import compile_gray_rules
    from graywsgi.prevalidation.openapi import load_openapi

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    failed = False
    rules: CompiledRules | None = None
    if args.rules is not None:
        try:
            rules = load_rules(args.rules)
        except ConfigurationError as exc:
            print(exc, file=err)
            failed = True
        else:
            ruleset = rules.ruleset
            print(
                f"{args.rules}: OK -- clusters {', '.join(sorted(ruleset.clusters))}; "
                f"default {ruleset.default_cluster}; {len(ruleset.rules)} rules",
                file=out,
            )
            if ruleset.plan is not None:
                plan = ruleset.plan
                steps = ", ".join(
                    f"{step.name} ({'=' if step.weight is None else f'{step.weight:g} %'})" for step in plan.steps
                )
                print(f"plan: {plan.rule} / {plan.cluster}: {steps}", file=out)
    if args.openapi is None:
        if args.rules is None:
            print("graywsgi validate: give --rules FILE, --openapi FILE or both", file=err)
            return 2
        return 1 if failed else 0
    try:
        document = load_openapi(args.openapi)
        operations = compile_gray_rules(document)
    except ConfigurationError as exc:
        print(exc, file=err)
        return 1
    if rules is not None:
        clusters = rules.ruleset.clusters
        for compiled in operations:
            for rule in compiled.rules:
                for route in sorted(rule.selector.routes - set(clusters)):
                    print(
                        document.node_problem(
                            rule.node,
                            compiled.label,
                            f"applies_to.routes names {route!r}, not a cluster of {args.rules} "
                            f"(clusters: {', '.join(sorted(clusters))})",
                        ),
                        file=err,
                    )
                    failed = True
    count = sum(len(compiled.rules) for compiled in operations)
    print(
        f"{args.openapi}: OK -- OpenAPI {document.version}, {len(operations)} operations, {count} gray rules",
        file=out,
    )
    print(file=out)
    print(render_table(operations), file=out)
    return 1 if failed else 0


def render_table(operations: t.Sequence[OperationRules]) -> str:
    """The rules of each operation as a plain-text table."""
    header = ("OPERATION", "FIELD", "APPLIES TO", "REQUIRED", "CONSTRAINT")
    rows: list[tuple[str, ...]] = []
    for compiled in operations:
        if not compiled.rules:
            rows.append((compiled.label, "-", "-", "-", "(no gray rules)"))
            continue
        for index, rule in enumerate(compiled.rules):
            constraint = json.dumps(rule.schema, ensure_ascii=False, separators=(", ", ": "))
            if len(constraint) > 70:
                constraint = constraint[:67] + "..."
            rows.append(
                (
                    compiled.label if index == 0 else "",
                    rule.field,
                    rule.selector.describe(),
                    "yes" if rule.required else "no",
                    constraint,
                )
            )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the command on its own (``python -m graywsgi.cli.validate``)."""
    parser = argparse.ArgumentParser(prog="graywsgi")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    return run_validate(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
