"""
Header field syntax
===================

Gray identifiers arrive in HTTP header fields and are copied into logs,
metrics and outgoing requests, so graywsgi only accepts names and values that
follow RFC 9110:

- a field name (§5.1) is a ``token``: one or more of ``A-Z a-z 0-9`` and
  ``! # $ % & ' * + - . ^ _ ` | ~``;
- a field value (§5.5) is a run of visible characters (``VCHAR``, 0x21-0x7E)
  and ``obs-text`` (0x80-0xFF) with spaces and horizontal tabs allowed only
  *between* them. CR, LF, NUL, every other C0 control and DEL are rejected,
  and so is obs-fold (a line break followed by whitespace). An empty value is
  valid.

Both checks take :class:`str` (as WSGI gives header values: each character
is one byte, decoded as latin-1 per PEP 3333) or :class:`bytes`. A ``str``
holding a character above U+00FF cannot have come off the wire and is
invalid.

Leading and trailing whitespace is not part of a field value; trim it with
:func:`trim_ows` before checking.

>>> valid_field_name("X-Gray-ID"), valid_field_name("X Gray")
(True, False)
>>> valid_field_value("user 42"), valid_field_value("a\\r\\nb")
(True, False)
>>> valid_field_value(trim_ows("  canary\\t"))
True
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["valid_field_name", "valid_field_value", "trim_ows", "field_names_equal", "wire_text", "field_text"]

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_NAME_STR = re.compile(f"[{_TCHARS}]+")
_NAME_BYTES = re.compile(f"[{_TCHARS}]+".encode("ascii"))

# field-vchar = VCHAR / obs-text; field-content = field-vchar
# [ 1*( SP / HTAB / field-vchar ) field-vchar ]
_VCHAR = r"\x21-\x7e\x80-\xff"
_VALUE = f"(?:[{_VCHAR}](?:[\\t {_VCHAR}]*[{_VCHAR}])?)?"
_VALUE_STR = re.compile(_VALUE)
_VALUE_BYTES = re.compile(_VALUE.encode("ascii"))


def valid_field_name(name: str | bytes) -> bool:
    """Whether ``name`` is an RFC 9110 field name (a ``token``).

    :param name: the name as ``str`` or ``bytes``.
    :return: ``True`` for a non-empty token.
    """
    if isinstance(name, bytes):
        return _NAME_BYTES.fullmatch(name) is not None
    return _NAME_STR.fullmatch(name) is not None


def valid_field_value(value: str | bytes) -> bool:
    """Whether ``value`` is an RFC 9110 field value.

    :param value: the value, already trimmed of surrounding SP/HTAB.
    :return: ``True`` if every character is a visible character or obs-text,
        with SP/HTAB only between them; an empty value is valid.
    """
    if isinstance(value, bytes):
        return _VALUE_BYTES.fullmatch(value) is not None
    return _VALUE_STR.fullmatch(value) is not None


def trim_ows(value: str) -> str:
    """Remove the optional whitespace (SP and HTAB only) around a value.

    :param value: a raw field value.
    :return: the value without leading or trailing SP/HTAB.
    """
    return value.strip(" \t")


def field_names_equal(a: str, b: str) -> bool:
    """Compare two field names as HTTP does: ASCII case-insensitively.

    :return: ``True`` if ``a`` and ``b`` are valid names of the same field.
    """
    if not (valid_field_name(a) and valid_field_name(b)):
        return False
    return a.lower() == b.lower()  # tokens are ASCII: str.lower() is ASCII-only here


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def wire_text(raw: bytes) -> str | None:
    """Bytes from the wire as text: UTF-8 if they are UTF-8, else latin-1.

    ``None`` when the text would carry a control, format or line-separator
    character (Unicode categories Cc, Cf, Zl, Zp: C1 controls such as NEL,
    U+2028, bidi overrides) -- obs-text bytes are valid on the wire but such
    text must not reach logs, metrics or outgoing headers.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    for char in text:
        if not char.isascii() and unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return None
    return text


def field_text(value: str) -> str | None:
    """A WSGI header value as text, or ``None`` if it is not a valid RFC 9110
    field value or its text is unsafe (see :func:`wire_text`)."""
    if not valid_field_value(value):
        return None
    if value.isascii():
        return value
    return wire_text(value.encode("latin-1"))
