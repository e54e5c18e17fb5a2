"""
The parser of the expression language: tokens to a syntax tree.

:class:`_Parser` reads the tokens of :mod:`graywsgi.rules.expression.tokens`
by recursive descent and builds the tree of
:mod:`graywsgi.rules.expression.nodes`, checking names, nesting and list
sizes (:mod:`graywsgi.rules.expression.limits`) on the way; types are
checked afterwards, by the closure builder of
:mod:`graywsgi.rules.expression.evaluate`.

Grammar
-------

The grammar, in EBNF, is in the package documentation
(:mod:`graywsgi.rules.expression`); :class:`_Parser` follows it rule by rule.

Comparisons do not chain (``a == b == c`` is an error: join them with
``&&``), nor does ``in``.

Attributes (bare names) are read with
:meth:`Facts.attribute <graywsgi.rules.expression.facts.Facts.attribute>`:

    ``host``, ``path``, ``method``, ``scheme``, ``remote_addr``,
    ``gray_id``, ``canary_id``, ``traffic_color``, ``env``, ``version``,
    ``api_version``, ``tenant``, ``role``

(:attr:`Expression.ATTRIBUTES <graywsgi.rules.expression.compiled.Expression.ATTRIBUTES>`).
Any other name is an error when the rule is loaded, and the message lists
the allowed ones (and suggests the nearest for a typo).
``header["X-Tier"]``, ``query["lang"]`` and ``cookie["beta"]`` read one
header (case-insensitively), query parameter or cookie; the key must be a
non-empty string literal, so a rule can never choose what to read from
request data.

Operators
---------

=============================  ==========================================
lowest: ``a || b``             true if either is; ``b`` is evaluated only
                               when ``a`` is false
``a && b``                     true if both are; ``b`` is evaluated only
                               when ``a`` is true
``!a``                         true if ``a`` is false
``a == b``, ``a != b``         equality (see
                               :mod:`graywsgi.rules.expression.values`)
``a < b`` ... ``a >= b``       ordering (ditto)
``a in [x, y, ...]``           ``a == x || a == y || ...``
highest: ``s.method(...)``     see the method table in
                               :mod:`graywsgi.rules.expression.evaluate`
=============================  ==========================================

So ``a || b && c`` is ``a || (b && c)``, ``!path.startsWith("/x")`` is
``!(path.startsWith("/x"))`` and ``!a == b`` is ``!(a == b)``. Parentheses
group.
"""

from __future__ import annotations

import difflib
import typing as t

from graywsgi.rules.expression.errors import ExpressionError, _where
from graywsgi.rules.expression.limits import MAX_DEPTH, MAX_LIST_ITEMS
from graywsgi.rules.expression.nodes import (
    _ATTRIBUTES,
    _LOOKUPS,
    _METHODS,
    _METHODS_WITH_ARGUMENT,
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
from graywsgi.rules.expression.tokens import _Token, _tokenize

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_LITERAL_NAMES: dict[str, bool | None] = {"true": True, "false": False, "null": None}


def _suggest(word: str, options: t.Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the nearest option, or ``""``."""
    by_lower = {option.lower(): option for option in options}
    if word.lower() in by_lower:
        return f" (did you mean '{by_lower[word.lower()]}'?)"
    close = difflib.get_close_matches(word.lower(), by_lower, n=1, cutoff=0.75)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


class _Parser:
    """Recursive descent over the grammar in the package docstring.

    Nesting is limited twice over. ``depth`` counts the '(' and '!' open at
    the current token, so that recursion stops early on input such as
    ``((((...``. ``heights`` holds each finished node's nesting height --
    parentheses, '!' and method calls around its deepest leaf -- which is
    what MAX_DEPTH limits, and what bounds the recursion of
    :class:`~graywsgi.rules.expression.evaluate._Builder`
    (``(path.lower()...).lower()...`` nests without nesting the parser).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.heights: dict[int, int] = {}

    def fail(self, position: int, reason: str) -> t.NoReturn:
        raise ExpressionError(self.source, position, reason)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, punct: str) -> _Token | None:
        token = self.tokens[self.index]
        if token.kind == "punct" and token.text == punct:
            self.index += 1
            return token
        return None

    def expect(self, punct: str, reason: str) -> _Token:
        token = self.accept(punct)
        if token is None:
            self.fail(self.peek().position, f"{reason}, found {self.peek().describe()}")
        return token

    def enter(self, position: int) -> None:
        """Open a '(' or '!' at ``position``."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.too_deep(position)

    def height(self, node: _Node) -> int:
        return self.heights.get(id(node), 0)

    def nest(self, node: _Node, height: int, position: int) -> None:
        """Record ``node``'s height; ``position`` is the token that added the level."""
        if height > MAX_DEPTH:
            self.too_deep(position)
        self.heights[id(node)] = height

    def too_deep(self, position: int) -> t.NoReturn:
        self.fail(
            position,
            f"nesting is deeper than {MAX_DEPTH} levels (each '(', '!' and method call is one)",
        )

    def parse(self) -> _Node:
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            if token.kind == "punct" and token.text == ")":
                self.fail(token.position, "')' has no matching '('")
            self.fail(token.position, f"expected an operator or end of input, found {token.describe()}")
        return node

    def parse_or(self) -> _Node:
        first = self.parse_and()
        operands = [first]
        while self.accept("||"):
            operands.append(self.parse_and())
        if len(operands) == 1:
            return first
        node = _Logic("||", tuple(operands), _position(first))
        self.heights[id(node)] = max(map(self.height, operands))
        return node

    def parse_and(self) -> _Node:
        first = self.parse_not()
        operands = [first]
        while self.accept("&&"):
            operands.append(self.parse_not())
        if len(operands) == 1:
            return first
        node = _Logic("&&", tuple(operands), _position(first))
        self.heights[id(node)] = max(map(self.height, operands))
        return node

    def parse_not(self) -> _Node:
        bangs: list[int] = []
        while (token := self.accept("!")) is not None:
            self.enter(token.position)
            bangs.append(token.position)
        node = self.parse_comparison()
        for position in reversed(bangs):
            operand = node
            node = _Not(operand, position)
            self.nest(node, self.height(operand) + 1, position)
        self.depth -= len(bangs)
        return node

    def parse_comparison(self) -> _Node:
        left = self.parse_operand()
        token = self.peek()
        if not (token.kind == "punct" and token.text in _COMPARISONS):
            return left
        self.advance()
        right = self.parse_operand()
        following = self.peek()
        if following.kind == "punct" and following.text in _COMPARISONS:
            self.fail(following.position, "comparisons do not chain; join them with '&&'")
        node = _Compare(token.text, left, right, token.position)
        self.heights[id(node)] = max(self.height(left), self.height(right))
        return node

    def parse_operand(self) -> _Node:
        node = self.parse_primary()
        while self.accept("."):
            token = self.advance()
            if token.kind != "name":
                self.fail(token.position, f"expected a method name after '.', found {token.describe()}")
            if token.text not in _METHODS:
                self.fail(
                    token.position,
                    f"unknown method '{token.text}'{_suggest(token.text, _METHODS)};"
                    f" methods: {', '.join(sorted(_METHODS))}",
                )
            height = self.height(node) + 1
            if height > MAX_DEPTH:
                self.too_deep(token.position)
            self.expect("(", f"expected '(' after '{token.text}'")
            argument_token = self.peek()
            if token.text in _METHODS_WITH_ARGUMENT:
                if argument_token.kind != "string":
                    self.fail(
                        argument_token.position,
                        f"{token.text}() takes one string literal, found {argument_token.describe()}",
                    )
                self.advance()
                argument: str | None = argument_token.text
                self.expect(")", f"{token.text}() takes one argument: expected ')'")
            else:
                argument = None
                self.expect(")", f"{token.text}() takes no arguments: expected ')'")
            node = _Method(node, token.text, argument, token.position, argument_token.position)
            self.nest(node, height, token.position)
        keyword = self.accept("in")
        if keyword is not None:
            operand = node
            node = _Member(operand, self.parse_list(), keyword.position)
            self.heights[id(node)] = self.height(operand)
            if self.accept("in"):
                self.fail(self.tokens[self.index - 1].position, "'in' does not chain")
        return node

    def parse_list(self) -> tuple[_Literal, ...]:
        self.expect("[", "'in' must be followed by a list literal such as [\"a\", \"b\"]")
        items: list[_Literal] = []
        if self.accept("]"):
            return ()
        while True:
            token = self.peek()
            item = self.literal(token)
            if item is None:
                if token.kind == "punct" and token.text == "[":
                    self.fail(token.position, "lists do not nest")
                self.fail(
                    token.position,
                    "list items must be literals (strings, numbers, true, false, null),"
                    f" found {token.describe()}",
                )
            self.advance()
            items.append(item)
            if len(items) > MAX_LIST_ITEMS:
                self.fail(token.position, f"a list has at most {MAX_LIST_ITEMS} items")
            if self.accept(","):
                if self.accept("]"):
                    return tuple(items)
                continue
            self.expect("]", "expected ',' or ']' in the list")
            return tuple(items)

    def literal(self, token: _Token) -> _Literal | None:
        if token.kind == "string":
            return _Literal(token.text, token.position)
        if token.kind == "number":
            return _Literal(float(token.text), token.position)
        if token.kind == "name" and token.text in _LITERAL_NAMES:
            return _Literal(_LITERAL_NAMES[token.text], token.position)
        return None

    def parse_primary(self) -> _Node:
        token = self.peek()
        literal = self.literal(token)
        if literal is not None:
            self.advance()
            return literal
        if token.kind == "name":
            self.advance()
            return self.name(token)
        if token.kind == "punct" and token.text == "(":
            self.advance()
            self.enter(token.position)
            node = self.parse_or()
            self.depth -= 1
            self.expect(")", f"expected ')' to close the '(' at {_where(self.source, token.position)}")
            self.nest(node, self.height(node) + 1, token.position)
            return node
        if token.kind == "punct" and token.text == "[":
            self.fail(token.position, "a list is only allowed after 'in'")
        self.fail(token.position, f"expected a value, found {token.describe()}")

    def name(self, token: _Token) -> _Node:
        word = token.text
        if word in _ATTRIBUTES:
            return _Read("attribute", word, token.position)
        if word in _LOOKUPS:
            example = f'{word}["{"X-Tier" if word == "header" else "beta"}"]'
            self.expect("[", f"{word} needs a key in brackets, e.g. {example}")
            key = self.peek()
            if key.kind != "string":
                self.fail(key.position, f"the key of {word}[...] must be a string literal, e.g. {example}")
            if key.text == "":
                self.fail(key.position, f"the key of {word}[...] is empty")
            self.advance()
            self.expect("]", f"expected ']' after the key of {word}[...]")
            return _Read(word, key.text, token.position)
        following = self.peek()
        if following.kind == "punct" and following.text == "(":
            if word in _METHODS:
                self.fail(token.position, f"{word}() is a method; write value.{word}(...)")
            self.fail(token.position, f"there are no functions: '{word}(' is not allowed")
        self.fail(
            token.position,
            f"unknown name '{word}'{_suggest(word, _ATTRIBUTES | _LOOKUPS)};"
            f" attributes: {', '.join(sorted(_ATTRIBUTES))};"
            ' lookups: header["..."], query["..."], cookie["..."]',
        )
