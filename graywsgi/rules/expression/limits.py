"""
Limits of the expression language.

The bounds that keep compiling and evaluating an expression cheap, whatever
the rule text says. The tokenizer (:mod:`graywsgi.rules.expression.tokens`),
the parser (:mod:`graywsgi.rules.expression.parser`), the closure builder
(:mod:`graywsgi.rules.expression.evaluate`) and
:class:`~graywsgi.rules.expression.compiled.Expression`
(:mod:`graywsgi.rules.expression.compiled`) apply them.

All are checked when the rule is loaded and raise
:class:`~graywsgi.rules.expression.errors.ExpressionError`:

- the source is at most 4096 characters
  (:data:`~graywsgi.rules.expression.limits.MAX_SOURCE_LENGTH`);
- nesting is at most 64 deep
  (:data:`~graywsgi.rules.expression.limits.MAX_DEPTH`), counting around any
  value each ``(``, ``!`` and method call that encloses or applies to it:
  ``!(path.lower().startsWith("/a"))`` is 4 deep. Deeper input is an error,
  never a :class:`RecursionError`;
- a list has at most 1000 items
  (:data:`~graywsgi.rules.expression.limits.MAX_LIST_ITEMS`); it is kept as
  frozensets, so ``in`` costs the same for 3 items or 1000;
- a ``matches`` pattern is at most 512 characters
  (:data:`~graywsgi.rules.expression.limits.MAX_PATTERN_LENGTH`) and must
  compile with :func:`re.compile`.

At request time ``matches`` is false for a value longer than 4096 characters
(:data:`~graywsgi.rules.expression.limits.MAX_MATCH_SUBJECT`) without
running the pattern.

The names are importable from :mod:`graywsgi.rules.expression` too.
"""

from __future__ import annotations

__all__ = [
    "MAX_SOURCE_LENGTH",
    "MAX_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_PATTERN_LENGTH",
    "MAX_MATCH_SUBJECT",
]

#: Longest accepted expression source, in characters.
MAX_SOURCE_LENGTH = 4096
#: Deepest accepted nesting of ``(``, ``!`` and chained method calls.
MAX_DEPTH = 64
#: Most items in one list literal.
MAX_LIST_ITEMS = 1000
#: Longest accepted ``matches()`` pattern, in characters.
MAX_PATTERN_LENGTH = 512
#: ``matches()`` is false, without running the pattern, on longer values.
MAX_MATCH_SUBJECT = 4096

# Longest number literal, and longest string read as a number.
_MAX_NUMBER_LENGTH = 64
