"""
One-line text for reasons and the report
========================================

How the rollback checklist (:mod:`graywsgi.rollout.checklist`) shows names,
values and reasons: on one line, without control characters a terminal
would act on, cut to a readable length. Used by the report
(:mod:`graywsgi.rollout.checklist.report`), the file checks
(:mod:`graywsgi.rollout.checklist.file`) and the check kinds.
"""

from __future__ import annotations

import re
import typing as t

__all__: list[str] = []

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """One line, with no control characters a terminal would act on."""
    text = re.sub(r"\s*[\r\n]+\s*", " | ", text.strip())
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else " ", text)


def _show_choices(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(values) == 1 else "one of " + ", ".join(map(str, values))


def _show_repr(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
