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
graywsgi.rules.expression.errors.ExpressionError: expression 'header["X-Tier"] == ': column 20: expected a value, found end of input

What an expression reads about a request comes from a :class:`Facts` object;
:class:`MappingFacts` is a plain one built from dictionaries (for tests, the
docs and the CLI).

The package
-----------

The language is implemented in these modules:

==========================================  ========================================
:mod:`~graywsgi.rules.expression.tokens`    the tokenizer: source text to tokens
:mod:`~graywsgi.rules.expression.parser`    the grammar: tokens to a syntax tree;
                                            operators, attributes and lookups
:mod:`~graywsgi.rules.expression.nodes`     the node types of the syntax tree
:mod:`~graywsgi.rules.expression.evaluate`  type checks, methods and conditions:
                                            the tree to closures
:mod:`~graywsgi.rules.expression.values`    values at run time: equality and
                                            ordering
:mod:`~graywsgi.rules.expression.compiled`  :class:`Expression`
:mod:`~graywsgi.rules.expression.facts`     :class:`Facts` and :class:`MappingFacts`
:mod:`~graywsgi.rules.expression.errors`    :class:`ExpressionError`
:mod:`~graywsgi.rules.expression.limits`    the ``MAX_*`` limits
==========================================  ========================================

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
  ``exec``, which is exactly what this package refuses to do.
- **no extra dependency**: cel-python brings ``lark``, ``pendulum``,
  ``pyyaml``, ``jmespath``, ``google-re2`` and ``python-dateutil``; this
  package is the standard library only.

Should rules ever need the rest of CEL (macros, arithmetic, maps, types),
the subset here is meant to parse unchanged under a real CEL implementation
apart from the differences listed.

Grammar
-------

In EBNF, lowest precedence first::

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

The tokens (``string``, ``number``; whitespace, escapes and the limits on
them) are detailed in :mod:`graywsgi.rules.expression.tokens`; precedence,
the attribute names and lookups in :mod:`graywsgi.rules.expression.parser`;
the methods and what counts as a condition in
:mod:`graywsgi.rules.expression.evaluate`; what values are and how they
compare (missing values, *no value*, equality, ordering) in
:mod:`graywsgi.rules.expression.values`; the limits in
:mod:`graywsgi.rules.expression.limits`.

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

Security
--------

- Rule text is data. It is tokenized and parsed by this package; nothing in
  it is ever handed to ``eval``, ``exec`` or Python's ``compile`` builtin, and
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

from graywsgi.rules.expression.compiled import Expression
from graywsgi.rules.expression.errors import ExpressionError
from graywsgi.rules.expression.facts import Facts, MappingFacts
from graywsgi.rules.expression.limits import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    MAX_MATCH_SUBJECT,
    MAX_PATTERN_LENGTH,
    MAX_SOURCE_LENGTH,
)

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
