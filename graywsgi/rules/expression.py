r"""
Expressions
===========

Routing rules sometimes need a condition that the structured matchers (host,
path, header, ...) cannot say: "gold-tier users, except on the admin pages, or
anyone who opted into the beta". Such a condition is written as a small
expression in the rules file::

    header["X-Tier"] == "gold" && !path.startsWith("/admin")
        || cookie["beta"] in ["1", "yes"]

:class:`Expression` parses and checks the text **once**, when the rules are
loaded, and turns it into nested Python closures. Evaluating it for a request
is a handful of function calls; nothing is parsed, type-checked or looked up
by name per request, and regular expressions and lists are prepared once. No
Python code is generated:
there is no ``eval``, no ``exec``, no code object and no ``ast`` module
involved, so the text of a rule can never become Python.

>>> rule = Expression('header["X-Tier"] == "gold" && !path.startsWith("/admin")'
...                   ' || cookie["beta"] in ["1", "yes"]')
>>> rule.evaluate(MappingFacts({"path": "/shop"}, headers={"x-tier": "gold"}))
True
>>> rule.evaluate(MappingFacts({"path": "/admin/users"}, headers={"X-Tier": "gold"}))
False
>>> rule.evaluate(MappingFacts({"path": "/admin/users"}, cookies={"beta": "yes"}))
True
>>> Expression('header["X-Tier"] == ')
Traceback (most recent call last):
  ...
graywsgi.rules.expression.ExpressionError: expression 'header["X-Tier"] == ': column 20: expected a value, found end of input

What an expression reads about a request comes from a :class:`Facts` object;
:class:`MappingFacts` is a plain one built from dictionaries (for tests, the
docs and the CLI).

Why not CEL itself
------------------

The language is deliberately CEL-compatible in spirit: the operators are
spelt as in Google's Common Expression Language (``&&``, ``||``, ``!``,
``==``, ``in``), string literals and escapes follow it, the methods have
CEL's names (``startsWith``, ``endsWith``, ``contains``, ``matches``,
``size``), a missing value is ``null``, and rules written in the subset read
the same to anyone who knows CEL. The differences are listed under
*Differences from CEL* below.

It is a hand-written grammar compiled to closures rather than the
``cel-python`` package because of

- **per-request cost**: every routed request evaluates every rule that
  reaches its expression. Measured on this project's 2-core machine with the
  three-clause rule of the example above (all three clauses evaluated)::

      graywsgi Expression.evaluate             ~1.2 us per evaluation
      cel-python 0.5.0, InterpretedRunner       ~700 us per evaluation
      cel-python 0.5.0, CompiledRunner          ~100 us per evaluation

  (CPython 3.11.7, best of 5; the cel-python figures include wrapping the
  request's values into CEL types, which a router must do per request --
  without it the compiled runner takes ~85 us; commands under
  *Performance* below). The interpreted runner walks a ``lark`` tree per
  call; the compiled one transpiles to Python source and runs it with
  ``exec``, which is exactly what this module refuses to do.
- **no extra dependency**: cel-python brings ``lark``, ``pendulum``,
  ``pyyaml``, ``jmespath``, ``google-re2`` and ``python-dateutil``; this
  module is the standard library only.

Should rules ever need the rest of CEL (macros, arithmetic, maps, types),
the subset here is meant to parse unchanged under a real CEL implementation
apart from the differences listed.

Grammar
-------

Whitespace (space, tab, CR, LF, form feed, vertical tab) between tokens is
insignificant, so a rule may span several lines. In EBNF, lowest precedence
first::

    expression  = or ;
    or          = and , { "||" , and } ;
    and         = not , { "&&" , not } ;
    not         = { "!" } , comparison ;
    comparison  = operand , [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) , operand ] ;
    operand     = primary , { "." , method , "(" , [ string ] , ")" } , [ "in" , list ] ;
    primary     = literal | attribute | lookup | "(" , expression , ")" ;
    lookup      = ( "header" | "query" | "cookie" ) , "[" , string , "]" ;
    list        = "[" , [ literal , { "," , literal } , [ "," ] ] , "]" ;
    literal     = string | number | "true" | "false" | "null" ;
    number      = [ "-" ] , digit , { digit } , [ "." , digit , { digit } ] ;
    string      = '"' , { character | escape } , '"'
                | "'" , { character | escape } , "'" ;
    escape      = "\" , ( '"' | "'" | "\" | "n" | "t" | "u" , 4 * hexdigit ) ;

Comparisons do not chain (``a == b == c`` is an error: join them with
``&&``), nor does ``in``. A string may not contain a raw line break or other
control character other than tab; write ``\n``. ``\uXXXX`` may not name a
surrogate. Numbers are decimal only: no exponent, no ``+``, no leading ``.``,
at most 64 characters; the ``-`` of a negative number must touch its digits
(there is no arithmetic, so ``-`` means nothing else).

Attributes (bare names) are read with :meth:`Facts.attribute`:

    ``host``, ``path``, ``method``, ``scheme``, ``remote_addr``,
    ``gray_id``, ``canary_id``, ``traffic_color``, ``env``, ``version``,
    ``api_version``, ``tenant``, ``role``

(:attr:`Expression.ATTRIBUTES`). Any other name is an error when the rule is
loaded, and the message lists the allowed ones (and suggests the nearest for
a typo). ``header["X-Tier"]``, ``query["lang"]`` and ``cookie["beta"]`` read
one header (case-insensitively), query parameter or cookie; the key must be a
non-empty string literal, so a rule can never choose what to read from
request data.

Operators and methods
---------------------

=============================  ==========================================
lowest: ``a || b``             true if either is; ``b`` is evaluated only
                               when ``a`` is false
``a && b``                     true if both are; ``b`` is evaluated only
                               when ``a`` is true
``!a``                         true if ``a`` is false
``a == b``, ``a != b``         equality (below)
``a < b`` ... ``a >= b``       ordering (below)
``a in [x, y, ...]``           ``a == x || a == y || ...``
highest: ``s.method(...)``     see the method table
=============================  ==========================================

So ``a || b && c`` is ``a || (b && c)``, ``!path.startsWith("/x")`` is
``!(path.startsWith("/x"))`` and ``!a == b`` is ``!(a == b)``. Parentheses
group.

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

Semantics
---------

Values are strings, numbers, booleans and ``null``. Attributes and lookups
are strings, or ``null`` when the request has no such value. Lists exist
only on the right of ``in``; their items are literals.

**Missing values.** A missing attribute, header, query parameter or cookie is
``null``. ``header["X-Beta"] == null`` is true when the header is absent, and
``header["X-Beta"] != "1"`` is true when it is absent or different.

**No value.** A method applied to ``null`` -- ``header["X"].lower()`` when
the header is missing -- gives *no value*: ``startsWith``, ``endsWith``,
``contains`` and ``matches`` are false, and any comparison or ``in`` with no
value on either side is false, ``!=`` included. So
``header["X"].lower() != "a"`` is false when the header is missing (there is
nothing to compare), while ``!(header["X"].lower() == "a")`` is true. A
value of an unexpected type returned by a :class:`Facts` object (anything
but a ``str`` or ``None``) is treated as no value too, so
:meth:`Expression.evaluate` never raises because of what the facts are.

**Equality** (``==``, ``!=``, ``in``): strings equal strings, numbers equal
numbers, booleans equal booleans and ``null`` equals ``null``. A string
compared with a number is converted to a number first if it is a *numeric
string* -- the number syntax above, at most 64 characters, so ``"1.50"`` is
``1.5`` but ``" 1"``, ``"1e3"``, ``"nan"`` and ``"1_000"`` are not numbers
-- and otherwise the two are unequal: ``==`` is false and ``!=`` true.
Two strings are never converted (``"1.0" == "1"`` is false). Any other pair
of types is unequal. ``!=`` is always the negation of ``==`` except when no
value is involved (then both are false).

**Ordering** (``<``, ``<=``, ``>``, ``>=``): numeric when both sides are
numbers or numeric strings (``header["X-Build"] >= 100``, and also
``"9" < "10"``); otherwise by code point when both sides are strings;
otherwise false -- in particular whenever either side is ``null``, no value
or a boolean. Compare versions with :mod:`graywsgi.core.version`, not with
``<``: ``"1.10.0" < "1.9.0"`` is true here.

**Conditions.** The operands of ``&&``, ``||`` and ``!`` and the whole
expression are conditions. A boolean is itself. A string-valued operand (an
attribute, a lookup, ``lower()``/``upper()``) means "present and not
empty", so ``header["X-Beta"] && !cookie["opt_out"]`` tests presence. A
number, ``null`` or a string literal as a condition is an error when the rule
is loaded (``path.size() > 0`` says what ``path.size()`` alone would not).

Differences from CEL
--------------------

- ``!`` binds more loosely than comparisons and ``in`` binds more tightly
  than them (CEL: ``!`` binds tightest; ``in`` sits with the comparisons).
  Both agree wherever the operand of ``!`` is a single call or is in
  parentheses, which is how rules are written.
- A missing header, query parameter or cookie is ``null``; in CEL, indexing
  a map with a missing key is an error (CEL rules test ``"X" in header``
  first).
- Strings compared with numbers are converted (CEL reports an error).
- A method on ``null`` is *no value*, which makes only the comparison around
  it false; CEL makes the whole expression an error, i.e. the rule does not
  match. ``!`` of such a comparison is therefore true here.
- A bare string as a condition tests presence (CEL requires a boolean).
- No arithmetic, no maps, no macros (``has``, ``all``, ``exists``), no
  functions, no field selection (``request.path``), no bytes, no raw or
  triple-quoted strings, no ``\r``, ``\x`` or octal escapes.
- ``matches`` uses Python :mod:`re`, not RE2 (see *Security*).

Limits
------

All are checked when the rule is loaded and raise :class:`ExpressionError`:

- the source is at most 4096 characters (:data:`MAX_SOURCE_LENGTH`);
- nesting is at most 64 deep (:data:`MAX_DEPTH`), counting around any
  value each ``(``, ``!`` and method call that encloses or applies to it:
  ``!(path.lower().startsWith("/a"))`` is 4 deep. Deeper input is an error,
  never a :class:`RecursionError`;
- a list has at most 1000 items (:data:`MAX_LIST_ITEMS`); it is kept as
  frozensets, so ``in`` costs the same for 3 items or 1000;
- a ``matches`` pattern is at most 512 characters
  (:data:`MAX_PATTERN_LENGTH`) and must compile with :func:`re.compile`.

At request time ``matches`` is false for a value longer than 4096 characters
(:data:`MAX_MATCH_SUBJECT`) without running the pattern.

Security
--------

- Rule text is data. It is tokenized and parsed by this module; nothing in it
  is ever handed to ``eval``, ``exec`` or Python's ``compile`` builtin, and
  request values are never interpreted at all: they are only compared,
  searched, cased and measured.
- Request values cannot choose what is read or which pattern runs: lookup
  keys and method arguments are literals.
- ``matches`` patterns are Python regular expressions, **not RE2**: a pattern
  with nested quantifiers such as ``(a+)+$`` can take exponential time on a
  crafted header. Writing patterns that run in linear time is the rule
  author's responsibility; the 4096-character cap on the subject bounds the
  input, not the backtracking. Prefer ``startsWith``/``endsWith``/
  ``contains``/``in`` where they suffice.
- Headers, query parameters and cookies are sent by the client. An
  expression over them decides routing, not authorization: anyone can send
  ``X-Tier: gold``.
- Work per evaluation is bounded by the size of the expression and the
  length of the values read, except for ``matches``.

Performance
-----------

The per-evaluation figures above were measured with (graywsgi, from the
repository root)::

    python -m timeit -s 'from graywsgi.rules.expression import Expression, MappingFacts' \
      -s 'e = Expression("header[\"X-Tier\"] == \"gold\" && !path.startsWith(\"/admin\") || cookie[\"beta\"] in [\"1\", \"yes\"]")' \
      -s 'f = MappingFacts({"path": "/admin/x"}, headers={"X-Tier": "gold"}, cookies={"beta": "no"})' \
      'e.evaluate(f)'

(1.1-1.5 us over repeated runs; of that, the three reads from
:class:`MappingFacts` are ~0.2 us). For cel-python, in a separate virtualenv
with ``pip install cel-python``, the same rule and values were timed with
:func:`timeit.repeat` (2000 calls, best of 5) on::

    program.evaluate({"header": json_to_cel(headers), "cookie": json_to_cel(cookies),
                      "path": celtypes.StringType(path)})

where ``program`` is ``env.program(tree)``, ``tree`` is the rule parsed by
``env.compile``, and ``env`` is ``celpy.Environment()`` (or
``celpy.Environment(runner_class=celpy.CompiledRunner)``).

Both evaluate to ``False`` for these facts, after evaluating all three
clauses.
"""

from __future__ import annotations

import difflib
import operator
import re
import typing as t
from dataclasses import dataclass
from types import MappingProxyType

from graywsgi.errors import ConfigurationError

__all__ = [
    "Expression",
    "ExpressionError",
    "Facts",
    "MappingFacts",
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

_MAX_NUMBER_LENGTH = 64


class Facts(t.Protocol):
    """What an expression can read about a request.

    Every method returns the value as a string, or ``None`` when the request
    has no such value. Anything else returned is treated as *no value* (see
    the module documentation); exceptions raised by these methods propagate
    out of :meth:`Expression.evaluate` unchanged.
    """

    def attribute(self, name: str) -> str | None:
        """An attribute: one of :attr:`Expression.ATTRIBUTES`."""
        ...

    def header(self, name: str) -> str | None:
        """A request header; ``name`` is matched case-insensitively."""
        ...

    def query(self, name: str) -> str | None:
        """A query-string parameter (the first, if repeated)."""
        ...

    def cookie(self, name: str) -> str | None:
        """A cookie."""
        ...


_EMPTY: t.Mapping[str, str] = MappingProxyType({})


class MappingFacts:
    """:class:`Facts` read from plain mappings.

    >>> facts = MappingFacts({"path": "/"}, headers={"X-Tier": "gold"})
    >>> facts.header("x-tier"), facts.attribute("host"), facts.cookie("beta")
    ('gold', None, None)

    :param attributes: attribute name to value.
    :param headers: header name (any case) to value.
    :param query: query parameter name to value.
    :param cookies: cookie name to value.
    """

    __slots__ = ("_attributes", "_headers", "_query", "_cookies")

    def __init__(
        self,
        attributes: t.Mapping[str, str] = _EMPTY,
        headers: t.Mapping[str, str] = _EMPTY,
        query: t.Mapping[str, str] = _EMPTY,
        cookies: t.Mapping[str, str] = _EMPTY,
    ) -> None:
        self._attributes = dict(attributes)
        self._headers = {name.lower(): value for name, value in headers.items()}
        self._query = dict(query)
        self._cookies = dict(cookies)

    def attribute(self, name: str) -> str | None:
        """The attribute ``name``, or ``None``."""
        return self._attributes.get(name)

    def header(self, name: str) -> str | None:
        """The header ``name`` (case-insensitive), or ``None``."""
        return self._headers.get(name.lower())

    def query(self, name: str) -> str | None:
        """The query parameter ``name``, or ``None``."""
        return self._query.get(name)

    def cookie(self, name: str) -> str | None:
        """The cookie ``name``, or ``None``."""
        return self._cookies.get(name)

    def __repr__(self) -> str:
        return (
            f"MappingFacts({self._attributes!r}, headers={self._headers!r}, "
            f"query={self._query!r}, cookies={self._cookies!r})"
        )


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


# --------------------------------------------------------------------------
# Values at run time: str, float/int (numbers), bool, None (null), and
# _NO_VALUE (a method applied to null, or a Facts value of a foreign type).

_NO_VALUE: t.Final = object()

_NUMERIC = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _as_number(text: str) -> float | None:
    """``text`` as a number if it is a numeric string, else ``None``."""
    if len(text) <= _MAX_NUMBER_LENGTH and _NUMERIC.fullmatch(text) is not None:
        return float(text)
    return None


def _normalize(value: object) -> object:
    """A Facts result as an expression value: ``str`` stays, the rest is no value."""
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a plain copy; a subclass's __str__ may do anything
    return _NO_VALUE


def _equal(a: object, b: object) -> bool:
    """``a == b`` for two values, neither of them no value."""
    ta = a.__class__
    tb = b.__class__
    if ta is tb:
        return a == b
    if ta is bool or tb is bool or a is None or b is None:
        return False
    if ta is str:
        number = _as_number(t.cast(str, a))
        return number is not None and number == b
    if tb is str:
        number = _as_number(t.cast(str, b))
        return number is not None and number == a
    return a == b  # int and float


def _ordered(a: object, b: object) -> tuple[t.Any, t.Any] | None:
    """The pair to order for ``a < b`` and friends, or ``None`` if unordered."""
    ta = a.__class__
    tb = b.__class__
    if ta is str:
        na: object = _as_number(t.cast(str, a))
    elif ta is float or ta is int:
        na = a
    else:
        return None  # null, no value, boolean
    if tb is str:
        nb: object = _as_number(t.cast(str, b))
    elif tb is float or tb is int:
        nb = b
    else:
        return None
    if na is not None and nb is not None:
        return na, nb
    if ta is str and tb is str:
        return a, b
    return None


# --------------------------------------------------------------------------
# Tokens


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


# --------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True, slots=True)
class _Literal:
    value: str | float | bool | None
    position: int


@dataclass(frozen=True, slots=True)
class _Read:
    kind: str  # "attribute", "header", "query" or "cookie": the Facts method
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class _Method:
    receiver: _Node
    name: str
    argument: str | None
    position: int  # of the method name
    argument_position: int


@dataclass(frozen=True, slots=True)
class _Compare:
    operator: str
    left: _Node
    right: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _Member:
    operand: _Node
    items: tuple[_Literal, ...]
    position: int


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _Logic:
    operator: str  # "&&" or "||"
    operands: tuple[_Node, ...]
    position: int


_Node: t.TypeAlias = _Literal | _Read | _Method | _Compare | _Member | _Not | _Logic

_ATTRIBUTES = frozenset(
    {
        "host",
        "path",
        "method",
        "scheme",
        "gray_id",
        "env",
        "version",
        "api_version",
        "canary_id",
        "traffic_color",
        "tenant",
        "role",
        "remote_addr",
    }
)
_LOOKUPS = frozenset({"header", "query", "cookie"})
_METHODS_WITH_ARGUMENT = frozenset({"startsWith", "endsWith", "contains", "matches"})
_METHODS_WITHOUT_ARGUMENT = frozenset({"lower", "upper", "size"})
_METHODS = _METHODS_WITH_ARGUMENT | _METHODS_WITHOUT_ARGUMENT
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
    """Recursive descent over the grammar in the module docstring.

    Nesting is limited twice over. ``depth`` counts the '(' and '!' open at
    the current token, so that recursion stops early on input such as
    ``((((...``. ``heights`` holds each finished node's nesting height --
    parentheses, '!' and method calls around its deepest leaf -- which is
    what MAX_DEPTH limits, and what bounds the recursion of :class:`_Builder`
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


def _position(node: _Node) -> int:
    """Where ``node`` starts in the source (its leftmost token)."""
    while True:
        if isinstance(node, _Method):
            node = node.receiver
        elif isinstance(node, _Compare):
            node = node.left
        elif isinstance(node, _Member):
            node = node.operand
        elif isinstance(node, _Logic):
            node = node.operands[0]
        else:
            return node.position


# --------------------------------------------------------------------------
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


class Expression:
    """A condition over a request, compiled once and evaluated per request.

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
        module documentation.
    :raises ExpressionError: if ``source`` is not a valid expression.
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
