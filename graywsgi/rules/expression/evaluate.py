"""
Evaluation of the expression language: a checked tree to closures.

:class:`_Builder` takes the tree built by
:mod:`graywsgi.rules.expression.parser` (node types in
:mod:`graywsgi.rules.expression.nodes`), checks its static types, and turns
it into nested Python closures that
:meth:`~graywsgi.rules.expression.compiled.Expression.evaluate` calls per request
with the request's :class:`~graywsgi.rules.expression.facts.Facts`. Regular expressions and lists are
prepared here, once; the values the closures compare follow
:mod:`graywsgi.rules.expression.values`.

Methods
-------

=========================  ==================================================
``s.startsWith(p)``        ``s`` begins with ``p``
``s.endsWith(p)``          ``s`` ends with ``p``
``s.contains(p)``          ``p`` occurs in ``s``
``s.matches(re)``          Python :mod:`re` *search* (unanchored, as in CEL;
                           write ``^...$`` to match the whole value)
``s.lower()``              ``s`` in lower case (Unicode rules of
                           :meth:`str.lower`)
``s.upper()``              ``s`` in upper case
``s.size()``               the number of characters in ``s``
=========================  ==================================================

Methods apply to strings: an attribute, a lookup, a string literal or the
result of ``lower()``/``upper()``; calling one on a number, a boolean or
``null`` is an error when the rule is loaded. The argument of
``startsWith``/``endsWith``/``contains``/``matches`` must be a string literal.

Conditions
----------

The operands of ``&&``, ``||`` and ``!`` and the whole expression are
conditions. A boolean is itself. A string-valued operand (an attribute, a
lookup, ``lower()``/``upper()``) means "present and not empty", so
``header["X-Beta"] && !cookie["opt_out"]`` tests presence. A number,
``null`` or a string literal as a condition is an error when the rule is
loaded (``path.size() > 0`` says what ``path.size()`` alone would not).
"""

from __future__ import annotations

import operator
import re
import typing as t

from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.facts import Facts
from graywsgi.rules.expression.limits import MAX_MATCH_SUBJECT, MAX_PATTERN_LENGTH
from graywsgi.rules.expression.nodes import (
    _METHODS_WITHOUT_ARGUMENT,
    _Compare,
    _Literal,
    _Logic,
    _Member,
    _Method,
    _Node,
    _Not,
    _position,
    _Read,
)
from graywsgi.rules.expression.values import _NO_VALUE, _as_number, _equal, _normalize, _ordered

# Static types and building the closures.

_Value = t.Callable[[Facts], object]
_Test = t.Callable[[Facts], bool]

_STRING, _NUMBER, _BOOL, _NULL = "string", "number", "boolean", "null"
_METHOD_TYPES = {
    "startsWith": _BOOL,
    "endsWith": _BOOL,
    "contains": _BOOL,
    "matches": _BOOL,
    "lower": _STRING,
    "upper": _STRING,
    "size": _NUMBER,
}
_ORDERINGS: dict[str, t.Callable[[t.Any, t.Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _type_of(node: _Node) -> str:
    if isinstance(node, _Literal):
        value = node.value
        if value is None:
            return _NULL
        if isinstance(value, bool):
            return _BOOL
        return _STRING if isinstance(value, str) else _NUMBER
    if isinstance(node, _Read):
        return _STRING
    if isinstance(node, _Method):
        return _METHOD_TYPES[node.name]
    return _BOOL


class _Builder:
    """Checks the tree's types and turns it into closures."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, position: int, reason: str) -> t.NoReturn:
        raise ExpressionError(self.source, position, reason)

    def test(self, node: _Node) -> _Test:
        """A closure that evaluates ``node`` as a condition."""
        kind = _type_of(node)
        if kind == _BOOL:
            if isinstance(node, _Literal):
                constant = bool(node.value)
                return lambda facts: constant
            return t.cast(_Test, self.value(node))
        if kind == _NUMBER or kind == _NULL:
            self.value(node)  # report a mistake inside it first, e.g. 42.size()
        if kind == _NUMBER:
            self.fail(_position(node), "a number is not a condition; compare it, e.g. path.size() > 0")
        if kind == _NULL:
            self.fail(_position(node), "null is not a condition; compare with it, e.g. header[\"X\"] == null")
        if isinstance(node, _Literal):
            self.fail(node.position, "a string literal is not a condition; compare it with something")
        if isinstance(node, _Read):
            call = operator.methodcaller(node.kind, node.name)

            def present(facts: Facts) -> bool:
                value = call(facts)
                if value.__class__ is not str:
                    value = _normalize(value)
                    if value.__class__ is not str:
                        return False
                return value != ""

            return present
        read = self.value(node)

        def non_empty(facts: Facts) -> bool:
            value = read(facts)
            return value.__class__ is str and value != ""

        return non_empty

    def value(self, node: _Node) -> _Value:
        """A closure that computes the value of ``node``."""
        if isinstance(node, _Literal):
            constant = node.value
            return lambda facts: constant
        if isinstance(node, _Read):
            return _reader(node.kind, node.name)
        if isinstance(node, _Method):
            return self.method(node)
        if isinstance(node, _Compare):
            return self.compare(node)
        if isinstance(node, _Member):
            return self.member(node)
        if isinstance(node, _Not):
            operand = self.test(node.operand)
            return lambda facts: not operand(facts)
        return self.logic(node)

    def logic(self, node: _Logic) -> _Test:
        tests = tuple(self.test(operand) for operand in node.operands)
        if node.operator == "&&":
            if len(tests) == 2:
                first, second = tests
                return lambda facts: first(facts) and second(facts)

            def every(facts: Facts) -> bool:
                for test in tests:
                    if not test(facts):
                        return False
                return True

            return every
        if len(tests) == 2:
            first, second = tests
            return lambda facts: first(facts) or second(facts)

        def some(facts: Facts) -> bool:
            for test in tests:
                if test(facts):
                    return True
            return False

        return some

    def method(self, node: _Method) -> _Value:
        receiver_type = _type_of(node.receiver)
        if receiver_type != _STRING:
            shown = {_NUMBER: "a number", _BOOL: "a boolean", _NULL: "null"}[receiver_type]
            self.fail(node.position, f"{node.name}() applies to strings, not to {shown}")
        receiver = self.value(node.receiver)
        name = node.name
        if name in _METHODS_WITHOUT_ARGUMENT:
            transform: t.Callable[[str], object] = {
                "lower": str.lower,
                "upper": str.upper,
                "size": len,
            }[name]

            def transformed(facts: Facts) -> object:
                value = receiver(facts)
                if value.__class__ is str:
                    return transform(value)
                return _NO_VALUE

            return transformed
        argument = t.cast(str, node.argument)
        if name == "matches":
            if len(argument) > MAX_PATTERN_LENGTH:
                self.fail(
                    node.argument_position,
                    f"a matches() pattern has at most {MAX_PATTERN_LENGTH} characters,"
                    f" this one {len(argument)}",
                )
            try:
                search = re.compile(argument).search
            except re.error as error:
                self.fail(node.argument_position, f"invalid regular expression: {error}")

            def matches(facts: Facts) -> bool:
                value = receiver(facts)
                return (
                    value.__class__ is str
                    and len(value) <= MAX_MATCH_SUBJECT
                    and search(value) is not None
                )

            return matches
        check: t.Callable[[str, str], bool] = {
            "startsWith": str.startswith,
            "endsWith": str.endswith,
            "contains": str.__contains__,
        }[name]

        if isinstance(node.receiver, _Read):
            call = operator.methodcaller(node.receiver.kind, node.receiver.name)

            def read_and_test(facts: Facts) -> bool:
                value: object = call(facts)
                if value.__class__ is not str:
                    value = _normalize(value)
                    if value.__class__ is not str:
                        return False
                return check(value, argument)

            return read_and_test

        def string_test(facts: Facts) -> bool:
            value = receiver(facts)
            return value.__class__ is str and check(value, argument)

        return string_test

    def compare(self, node: _Compare) -> _Test:
        op, left, right = node.operator, node.left, node.right
        for side, other in ((left, right), (right, left)):
            if (
                not isinstance(side, _Literal)
                and _type_of(side) == _STRING
                and isinstance(other, _Literal)
                and isinstance(other.value, bool)
            ):
                word = "true" if other.value else "false"
                self.fail(
                    other.position,
                    f"a string is never equal to {word}; write \"{word}\" in quotes to compare text",
                )
        if isinstance(left, _Literal) and not isinstance(right, _Literal):
            op, left, right = _MIRRORED[op], right, left
        if isinstance(right, _Literal):
            constant = right.value
            if isinstance(left, _Read) and isinstance(constant, str) and op in ("==", "!="):
                return _compare_read_with_string(left, op, constant)
            read = self.value(left)
            return _compare_with_constant(read, op, constant)
        first, second = self.value(left), self.value(right)
        if op == "==":

            def equal(facts: Facts) -> bool:
                a = first(facts)
                b = second(facts)
                return a is not _NO_VALUE and b is not _NO_VALUE and _equal(a, b)

            return equal
        if op == "!=":

            def unequal(facts: Facts) -> bool:
                a = first(facts)
                b = second(facts)
                return a is not _NO_VALUE and b is not _NO_VALUE and not _equal(a, b)

            return unequal
        order = _ORDERINGS[op]

        def ordered(facts: Facts) -> bool:
            pair = _ordered(first(facts), second(facts))
            return pair is not None and order(*pair)

        return ordered

    def member(self, node: _Member) -> _Test:
        values = [item.value for item in node.items]
        strings = frozenset(value for value in values if isinstance(value, str))
        numbers = frozenset(value for value in values if isinstance(value, float))
        all_numbers = numbers | frozenset(
            number for number in map(_as_number, strings) if number is not None
        )
        booleans = frozenset(value for value in values if isinstance(value, bool))
        has_null = None in values

        def contains(value: object) -> bool:
            kind = value.__class__
            if kind is str:
                if value in strings:
                    return True
                if numbers:
                    number = _as_number(t.cast(str, value))
                    return number is not None and number in numbers
                return False
            if value is None:
                return has_null
            if kind is bool:
                return value in booleans
            if kind is float or kind is int:
                return value in all_numbers
            return False  # no value

        operand = node.operand
        if isinstance(operand, _Read) and not numbers:
            call = operator.methodcaller(operand.kind, operand.name)

            def read_in_strings(facts: Facts) -> bool:
                value = call(facts)
                if value.__class__ is str:
                    return value in strings
                return contains(_normalize(value))

            return read_in_strings
        read = self.value(operand)
        return lambda facts: contains(read(facts))


def _reader(kind: str, name: str) -> _Value:
    call = operator.methodcaller(kind, name)

    def read(facts: Facts) -> object:
        value = call(facts)
        if value is None or value.__class__ is str:
            return value
        return _normalize(value)

    return read


def _compare_read_with_string(node: _Read, op: str, constant: str) -> _Test:
    """``header["X"] == "gold"`` and friends: the commonest comparison, inlined."""
    call = operator.methodcaller(node.kind, node.name)
    if op == "==":

        def equal(facts: Facts) -> bool:
            value: object = call(facts)
            if value.__class__ is not str:
                value = _normalize(value)
            return value == constant

        return equal

    def unequal(facts: Facts) -> bool:
        value: object = call(facts)
        if value.__class__ is not str:
            value = _normalize(value)
            if value.__class__ is not str:
                return value is None  # null != "x"; no value compares as nothing
        return value != constant

    return unequal


def _compare_with_constant(read: _Value, op: str, constant: object) -> _Test:
    if op == "==":
        return lambda facts: (value := read(facts)) is not _NO_VALUE and _equal(value, constant)
    if op == "!=":
        return lambda facts: (value := read(facts)) is not _NO_VALUE and not _equal(value, constant)
    order = _ORDERINGS[op]

    def ordered(facts: Facts) -> bool:
        pair = _ordered(read(facts), constant)
        return pair is not None and order(*pair)

    return ordered
