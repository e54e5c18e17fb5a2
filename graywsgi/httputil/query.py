"""Query strings as bytes: percent-decoding that rejects malformed escapes."""

from __future__ import annotations

import re
import typing as t
from urllib.parse import unquote_to_bytes

__all__ = ["decode_component", "go_query_get", "parse_query", "query_param_bytes", "strict_query_get"]

_PERCENT_ENCODED = re.compile(rb"(?:[^%]|%[0-9A-Fa-f]{2})*")


def decode_component(raw: bytes) -> bytes | None:
    """Percent-decode one name or value (``+`` is a space).

    :return: the decoded bytes, or ``None`` if a ``%`` escape is malformed.
    """
    if b"%" in raw and _PERCENT_ENCODED.fullmatch(raw) is None:
        return None
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _pairs(query_string: str) -> list[tuple[bytes, bytes]]:
    try:
        raw = query_string.encode("latin-1")
    except UnicodeEncodeError:
        return []
    pairs = []
    for part in raw.split(b"&"):
        key, _, value = part.partition(b"=")
        pairs.append((key, value))
    return pairs


def query_param_bytes(query_string: str, name: str) -> bytes | None:
    """Return the first value of query parameter ``name``, percent-decoded.

    :param query_string: ``environ["QUERY_STRING"]`` (a latin-1 WSGI string).
    :param name: the parameter name (compared after decoding, as UTF-8).
    :return: the decoded bytes, or ``None`` if the parameter is absent or
        its value has a malformed ``%`` escape.
    """
    wanted = name.encode("utf-8")
    for key, value in _pairs(query_string):
        if decode_component(key) == wanted:
            return decode_component(value)
    return None


def go_query_get(query_string: str, name: str) -> bytes | None:
    """Query parameter ``name`` as Go's ``url.Query().Get`` reads it (Go 1.17
    and later): pairs are split on ``&`` only, a pair holding ``;`` and a
    pair whose name or value has a malformed ``%`` escape are skipped, and
    the first remaining value of ``name`` is returned (``b""`` for an empty
    one, ``None`` when there is none).

    >>> go_query_get("gray_id=%ZZ&gray_id=u", "gray_id"), go_query_get("gray_id=a;b", "gray_id")
    (b'u', None)
    """
    wanted = name.encode("utf-8")
    try:
        raw = query_string.encode("latin-1")
    except UnicodeEncodeError:
        return None
    for part in raw.split(b"&"):
        if not part or b";" in part:
            continue
        key, _, value = part.partition(b"=")
        if decode_component(key) != wanted:
            continue
        decoded = decode_component(value)
        if decoded is not None:
            return decoded
    return None


def strict_query_get(query_string: str, name: str) -> bytes | None | t.Literal[False]:
    """Query parameter ``name`` read strictly: the first pair of that name
    decides. Its decoded value; ``False`` when that value has a malformed
    ``%`` escape or holds ``;`` (which Go would drop); ``None`` when absent.

    >>> strict_query_get("gray_id=%ZZ&gray_id=u", "gray_id"), strict_query_get("gray_id=u", "gray_id")
    (False, b'u')
    """
    wanted = name.encode("utf-8")
    for key, value in _pairs(query_string):
        if decode_component(key) == wanted:
            decoded = decode_component(value)
            return False if decoded is None or b";" in value else decoded
    return None


def parse_query(query_string: str) -> dict[str, bytes]:
    """Every parameter's first well-formed value, by UTF-8 name."""
    out: dict[str, bytes] = {}
    for key, value in _pairs(query_string):
        name = decode_component(key)
        if not name:
            continue
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text in out:
            continue
        decoded = decode_component(value)
        if decoded is not None:
            out[text] = decoded
    return out
