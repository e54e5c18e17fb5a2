"""
The compiled expression: :class:`Expression`.

:class:`Expression` is the public face of the language: it checks the
source's length (:mod:`graywsgi.rules.expression.limits`), parses it
(:mod:`graywsgi.rules.expression.parser`), builds the closures
(:mod:`graywsgi.rules.expression.evaluate`) once, and evaluates them per
request against :class:`~graywsgi.rules.expression.facts.Facts`. The language
itself is described in the package documentation
(:mod:`graywsgi.rules.expression`).
"""

from __future__ import annotations

import typing as t

from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.evaluate import _Builder, _Test
from graywsgi.rules.expression.facts import Facts
from graywsgi.rules.expression.limits import MAX_SOURCE_LENGTH
from graywsgi.rules.expression.nodes import _ATTRIBUTES
from graywsgi.rules.expression.parser import _Parser

__all__ = ["Expression"]


class Expression:
    """A condition over a request, compiled once and evaluated per request.

    >>> from graywsgi.rules.expression import MappingFacts
    >>> beta = Expression('cookie["beta"] in ["1", "yes"] || header["X-Beta"]')
    >>> beta.evaluate(MappingFacts(cookies={"beta": "yes"}))
    True
    >>> beta.evaluate(MappingFacts(headers={"x-beta": "on"}))
    True
    >>> beta.evaluate(MappingFacts())
    False
    >>> beta
    Expression('cookie["beta"] in ["1", "yes"] || header["X-Beta"]')

    Instances are immutable and hold no per-request state: share one between
    threads freely. They compare and hash by source and pickle by source
    (the closures are rebuilt on load).

    :param source: the expression text; the grammar and semantics are in the
        package documentation (:mod:`graywsgi.rules.expression`).
    :raises ~graywsgi.rules.expression.errors.ExpressionError: if ``source`` is not a
        valid expression.
    """

    __slots__ = ("source", "_test")

    #: The attribute names an expression may use bare.
    ATTRIBUTES: t.ClassVar[frozenset[str]] = _ATTRIBUTES

    source: str
    _test: _Test

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise ExpressionError(
                repr(source), 0, f"an expression must be a string, not {type(source).__name__}"
            )
        if len(source) > MAX_SOURCE_LENGTH:
            raise ExpressionError(
                source,
                MAX_SOURCE_LENGTH,
                f"an expression has at most {MAX_SOURCE_LENGTH} characters, this one {len(source)}",
            )
        try:
            tree = _Parser(source).parse()
            test = _Builder(source).test(tree)
        except RecursionError:
            # Not reachable within MAX_DEPTH from an ordinary stack; kept so that
            # a caller already deep in recursion still gets a ConfigurationError.
            raise ExpressionError(source, 0, "expression nests too deeply for the current stack") from None
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "_test", test)

    def evaluate(self, facts: Facts) -> bool:
        """Whether the request described by ``facts`` satisfies the expression.

        Never raises because of the values ``facts`` returns; exceptions raised
        by ``facts`` itself propagate.

        :param facts: what the expression can read about the request.
        :return: ``True`` or ``False``.
        """
        return self._test(facts)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Expression):
            return self.source == other.source
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Expression, self.source))

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (type(self), (self.source,))
