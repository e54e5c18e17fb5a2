"""
The error of the expression language.

:class:`ExpressionError` is what compiling a bad expression raises, from the
tokenizer (:mod:`graywsgi.rules.expression.tokens`), the parser
(:mod:`graywsgi.rules.expression.parser`), the closure builder
(:mod:`graywsgi.rules.expression.evaluate`) or
:class:`~graywsgi.rules.expression.compiled.Expression` itself
(:mod:`graywsgi.rules.expression.compiled`). This module also holds the
helpers that quote the source and locate a position in it for the message.
"""

from __future__ import annotations

import typing as t

from graywsgi.errors import ConfigurationError

__all__ = ["ExpressionError"]


class ExpressionError(ConfigurationError):
    """An expression that cannot be compiled.

    The message names the expression, where the problem is (1-based column,
    and line when the expression spans lines) and what is wrong::

        expression 'header["a"] == ': column 15: expected a value, found end of input

    :param source: the expression text.
    :param position: 0-based offset of the problem in ``source``.
    :param reason: what is wrong.
    """

    source: str
    position: int
    reason: str

    def __init__(self, source: str, position: int, reason: str) -> None:
        self.source = source
        self.position = position
        self.reason = reason
        super().__init__(f"expression {_quote(source)}: {_where(source, position)}: {reason}")

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (type(self), (self.source, self.position, self.reason))


def _quote(source: str) -> str:
    shown = source if len(source) <= 200 else source[:197] + "..."
    if shown.isprintable():
        return f"'{shown}'"
    return repr(shown)


def _where(source: str, position: int) -> str:
    if "\n" not in source:
        return f"column {position + 1}"
    line = source.count("\n", 0, position) + 1
    column = position - (source.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"
