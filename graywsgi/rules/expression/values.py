"""
Values at run time, and how they compare.

An evaluated expression deals in strings, numbers, booleans, ``null`` and
*no value*. This module holds the marker for no value and the rules for
equality and ordering that the closures built by
:mod:`graywsgi.rules.expression.evaluate` apply; conditions (how a value
counts as true) are described there too. The syntax of number literals,
which numeric strings share, is in :mod:`graywsgi.rules.expression.tokens`.

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
value of an unexpected type returned by a
:class:`~graywsgi.rules.expression.facts.Facts` object (anything but a ``str`` or
``None``) is treated as no value too, so
:meth:`~graywsgi.rules.expression.compiled.Expression.evaluate` never raises because
of what the facts are.

**Equality** (``==``, ``!=``, ``in``): strings equal strings, numbers equal
numbers, booleans equal booleans and ``null`` equals ``null``. A string
compared with a number is converted to a number first if it is a *numeric
string* -- the number syntax of :mod:`graywsgi.rules.expression.tokens`, at
most 64 characters, so ``"1.50"`` is ``1.5`` but ``" 1"``, ``"1e3"``,
``"nan"`` and ``"1_000"`` are not numbers -- and otherwise the two are
unequal: ``==`` is false and ``!=`` true. Two strings are never converted
(``"1.0" == "1"`` is false). Any other pair of types is unequal. ``!=`` is
always the negation of ``==`` except when no value is involved (then both
are false).

**Ordering** (``<``, ``<=``, ``>``, ``>=``): numeric when both sides are
numbers or numeric strings (``header["X-Build"] >= 100``, and also
``"9" < "10"``); otherwise by code point when both sides are strings;
otherwise false -- in particular whenever either side is ``null``, no value
or a boolean. Compare versions with :mod:`graywsgi.core.version`, not with
``<``: ``"1.10.0" < "1.9.0"`` is true here.
"""

from __future__ import annotations

import re
import typing as t

from graywsgi.rules.expression.limits import _MAX_NUMBER_LENGTH

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
