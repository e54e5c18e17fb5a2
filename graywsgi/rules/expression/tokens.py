r"""
The tokenizer of the expression language.

:func:`~graywsgi.rules.expression.tokens._tokenize` turns the source text
into tokens -- strings (decoded), numbers, names, punctuation and the end of
input -- for the parser (:mod:`graywsgi.rules.expression.parser`), and
rejects what is not a token with an
:class:`~graywsgi.rules.expression.errors.ExpressionError` that says what to write
instead (``=`` for ``==``, ``and`` for ``&&``, ``None`` for ``null``, ...).
Numbers share their syntax with numeric strings
(:mod:`graywsgi.rules.expression.values`).

Tokens
------

Whitespace (space, tab, CR, LF, form feed, vertical tab) between tokens is
insignificant, so a rule may span several lines. The tokens are the
``string`` and ``number`` of the grammar in the package documentation
(:mod:`graywsgi.rules.expression`), names, and the punctuation of the
operators and brackets.

A string may not contain a raw line break or other control character other
than tab; write ``\n``. ``\uXXXX`` may not name a surrogate. Numbers are
decimal only: no exponent, no ``+``, no leading ``.``, at most 64
characters; the ``-`` of a negative number must touch its digits (there is
no arithmetic, so ``-`` means nothing else).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.limits import _MAX_NUMBER_LENGTH
from graywsgi.rules.expression.values import _NUMERIC


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "string", "number", "name", "punct" or "end"
    text: str  # the source text (the decoded value for strings)
    position: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of input"
        if self.kind == "string":
            shown = self.text if len(self.text) <= 20 else self.text[:17] + "..."
            return f"string {_quote_value(shown)}"
        if self.kind == "number":
            return f"number {self.text}"
        if self.kind == "name":
            return f"name '{self.text}'"
        return f"'{self.text}'"


def _quote_value(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.encode("ascii", "backslashreplace").decode("ascii") + '"'


_WHITESPACE = frozenset(" \t\r\n\f\v")
_PUNCT2 = frozenset({"==", "!=", "<=", ">=", "&&", "||"})
_PUNCT1 = frozenset("()[],.<>!")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_HELP = "the escapes are \\\" \\' \\\\ \\n \\t and \\uXXXX"
_SPELLED_OPERATORS = {"and": "&&", "or": "||", "not": "!"}
_OTHER_LITERALS = {"true": "true", "false": "false", "none": "null", "null": "null", "nil": "null"}


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(source)

    def fail(position: int, reason: str) -> t.NoReturn:
        raise ExpressionError(source, position, reason)

    while i < n:
        c = source[i]
        if c in _WHITESPACE:
            i += 1
            continue
        pair = source[i : i + 2]
        if pair in _PUNCT2:
            if source[i + 2 : i + 3] == "=" and pair in ("==", "!="):
                fail(i, f"'{pair}=' is not an operator; use '{pair}'")
            tokens.append(_Token("punct", pair, i))
            i += 2
        elif c in _PUNCT1:
            tokens.append(_Token("punct", c, i))
            i += 1
        elif c == "=":
            fail(i, "'=' is not an operator; use '==' to compare")
        elif c == "&":
            fail(i, "'&' is not an operator; use '&&'")
        elif c == "|":
            fail(i, "'|' is not an operator; use '||'")
        elif c == '"' or c == "'":
            text, end = _scan_string(source, i)
            tokens.append(_Token("string", text, i))
            i = end
        elif "0" <= c <= "9" or (c == "-" and i + 1 < n and "0" <= source[i + 1] <= "9"):
            match = _NUMERIC.match(source, i)
            assert match is not None  # the first character is a digit or "-digit"
            end = match.end()
            if end < n and (source[end].isalnum() or source[end] == "_"):
                trailing = _NAME.match(source, end)
                fail(i, f"invalid number '{source[i : trailing.end() if trailing else end + 1]}'")
            if end - i > _MAX_NUMBER_LENGTH:
                fail(i, f"a number has at most {_MAX_NUMBER_LENGTH} characters")
            tokens.append(_Token("number", source[i:end], i))
            i = end
        elif c == "-":
            fail(i, "'-' is only the sign of a number literal; there is no arithmetic")
        elif c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z"):
            match = _NAME.match(source, i)
            assert match is not None
            word = match.group()
            if word.lower() in _SPELLED_OPERATORS:
                fail(i, f"'{word}' is not an operator; use '{_SPELLED_OPERATORS[word.lower()]}'")
            if word.lower() in _OTHER_LITERALS and word not in ("true", "false", "null"):
                fail(i, f"unknown name '{word}'; write '{_OTHER_LITERALS[word.lower()]}'")
            kind = "punct" if word == "in" else "name"
            tokens.append(_Token(kind, word, i))
            i = match.end()
        else:
            fail(i, f"unexpected character {c!r}")
    end_of_input = n
    while end_of_input > 0 and source[end_of_input - 1] in _WHITESPACE:
        end_of_input -= 1
    tokens.append(_Token("end", "", end_of_input))
    return tokens


def _scan_string(source: str, start: int) -> tuple[str, int]:
    """Decode the string literal opening at ``start``; return it and its end."""
    quote = source[start]
    parts: list[str] = []
    i = start + 1
    n = len(source)
    while True:
        if i >= n or source[i] in "\r\n":
            raise ExpressionError(source, start, "string is not closed")
        c = source[i]
        if c == quote:
            return "".join(parts), i + 1
        if c == "\\":
            escape = source[i + 1 : i + 2]
            if escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                i += 2
            elif escape == "u":
                digits = source[i + 2 : i + 6]
                if len(digits) != 4 or not _HEX.issuperset(digits):
                    raise ExpressionError(source, i, "\\u must be followed by 4 hex digits")
                code = int(digits, 16)
                if 0xD800 <= code <= 0xDFFF:
                    raise ExpressionError(source, i, f"\\u{digits} is a surrogate, not a character")
                parts.append(chr(code))
                i += 6
            else:
                shown = f"'\\{escape}'" if escape else "'\\' at the end"
                raise ExpressionError(source, i, f"unknown escape {shown}; {_ESCAPE_HELP}")
        elif (c < " " and c != "\t") or c == "\x7f":
            raise ExpressionError(source, i, f"control character {c!r} in a string; use an escape")
        else:
            parts.append(c)
            i += 1
