"""
Gray header signatures
======================

A gateway that cannot be reached from a trusted network vouches for the gray
headers (:mod:`graywsgi.httputil.gray_headers`) it sets by signing them with
HMAC-SHA256; :class:`~graywsgi.httputil.trust.TrustPolicy` checks the
signature (see "Key rotation" and "Clock skew" in
:mod:`graywsgi.httputil.trust`). This module holds the
signature format: the canonical string (:func:`canonical_string`), signing
(:func:`sign`) and parsing the signature header. Its siblings:
:mod:`graywsgi.httputil.trust` (the policy) and
:mod:`graywsgi.httputil.trusted_networks` (trust by peer address).

Signed headers: what a gateway does
-----------------------------------

1. Remove the client's gray headers and signature header (all spellings).
2. Decide the gray header values and set them (or leave them absent).
3. Build the canonical string below and compute HMAC-SHA256 over it with
   the current key.
4. Send ``X-Gray-Signature: t=<unix seconds>,kid=<key id>,v1=<hex digest>``.

Signature header value
~~~~~~~~~~~~~~~~~~~~~~

A comma-separated list of ``name=value`` parameters, optional spaces or tabs
around each comma, in any order:

- ``t`` (required): the signing time in whole Unix seconds, decimal, no
  sign and no leading zeros (``0`` itself is allowed);
- ``kid`` (optional): the key id (an RFC 9110 token); without it every
  configured key is tried;
- ``v1`` (required): the HMAC-SHA256 digest, 64 hex digits (either case).

Other parameters are ignored (room for a future ``v2``); a parameter given
twice, an empty item, a value longer than 1024 characters or anything else
outside this grammar makes the signature invalid. Parameter names are
case-sensitive.

Canonical string
~~~~~~~~~~~~~~~~

The bytes the HMAC covers (:func:`canonical_string`)::

    "graywsgi-v1" LF
    <t, exactly as in the t parameter> LF
    "x-gray-id:"        <value> LF
    "x-traffic-color:"  <value> LF
    "x-canary-weight:"  <value> LF
    "x-version:"        <value> LF
    "x-env:"            <value> LF
    "x-canary-id:"      <value> LF

LF is the byte 0x0A. The six lines are always present, in this order, with
an empty value for a header that is absent; so a gray header added to the
request after signing breaks the signature. Each value is the header's bytes
as sent, with leading and trailing spaces and tabs removed; it must be an
RFC 9110 field value (no CR, LF or other control bytes), which keeps the
lines unambiguous. Send non-ASCII values as UTF-8 (:func:`sign` encodes
``str`` that way); a WSGI server hands them to the service byte for byte.
An empty header is the same as an absent one.

A worked example, signed here and checked by the policy, is in
:mod:`graywsgi.httputil.trust`.
"""

from __future__ import annotations

import hmac
import re
import typing as t

from graywsgi.httputil.gray_headers import GRAY_HEADER_NAMES, GRAY_HEADERS
from graywsgi.httputil.headers import valid_field_value

__all__ = ["sign", "canonical_string", "MAX_SIGNATURE_LENGTH"]

#: Longest signature header value considered; longer ones are invalid.
MAX_SIGNATURE_LENGTH = 1024

_CANONICAL_VERSION = b"graywsgi-v1\n"
_LINE_PREFIXES = tuple(f"{name}:".encode("ascii") for name in GRAY_HEADER_NAMES)
_NAME_INDEX = {name: index for index, name in enumerate(GRAY_HEADER_NAMES)}
_GRAY_ITEMS = tuple(zip(GRAY_HEADERS, _LINE_PREFIXES))

# One signature parameter, with the optional whitespace around the comma
# that separated it. The value stops at a comma (the split) and excludes
# whitespace and controls.
_PARAM = re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)=([\x21-\x7e]*)[ \t]*")
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,15}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _canonical(timestamp: bytes, values: t.Sequence[bytes]) -> bytes:
    parts = [_CANONICAL_VERSION, timestamp, b"\n"]
    for prefix, value in zip(_LINE_PREFIXES, values):
        parts += (prefix, value, b"\n")
    return b"".join(parts)


def _check_timestamp(timestamp: int) -> bytes:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int (Unix seconds), got {timestamp!r}")
    if timestamp < 0:
        raise ValueError(f"timestamp must not be negative, got {timestamp}")
    return str(timestamp).encode("ascii")


def _canonical_values(values: t.Mapping[str, str | bytes]) -> list[bytes]:
    ordered = [b""] * len(GRAY_HEADER_NAMES)
    seen: set[int] = set()
    for name, value in values.items():
        index = _NAME_INDEX.get(name.lower()) if name.isascii() else None
        if index is None:
            raise ValueError(
                f"{name!r} is not a gray header; signable headers: "
                f"{', '.join(GRAY_HEADER_NAMES)}"
            )
        if index in seen:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(index)
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        raw = raw.strip(b" \t")
        if not valid_field_value(raw):
            raise ValueError(
                f"value of {name!r} is not an RFC 9110 field value (control characters?)"
            )
        ordered[index] = raw
    return ordered


def canonical_string(timestamp: int, values: t.Mapping[str, str | bytes]) -> bytes:
    """Return the bytes a gateway signs (see "Canonical string" above).

    :param timestamp: the signing time, whole Unix seconds (``t=``).
    :param values: gray header values by HTTP name, case-insensitive
        (``{"X-Gray-ID": "u1"}``). Absent headers are signed as empty.
        ``str`` values are encoded as UTF-8, ``bytes`` are used as they are;
        both are trimmed of surrounding spaces and tabs.
    :return: ``graywsgi-v1\\n<t>\\n`` and one ``<name>:<value>\\n`` line per
        gray header, in :data:`~graywsgi.httputil.gray_headers.GRAY_HEADER_NAMES` order.
    :raises ValueError: for a name that is not a gray header, a header
        given twice, a value with control characters, or a negative time.
    :raises TypeError: if ``timestamp`` is not an int.
    """
    return _canonical(_check_timestamp(timestamp), _canonical_values(values))


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        return secret.encode("utf-8")
    if isinstance(secret, (bytes, bytearray, memoryview)):
        return bytes(secret)
    raise TypeError(f"a secret must be str or bytes, got {type(secret).__name__}")


def sign(
    key: str | bytes,
    key_id: str,
    headers: t.Mapping[str, str | bytes],
    timestamp: int,
) -> str:
    """Return the signature header value a gateway sends with ``headers``.

    >>> sign(b"s3cret", "k1", {"x-gray-id": "u1"}, 1700000000)
    't=1700000000,kid=k1,v1=4c4347946586c34997aca9803757fa6f6b9c61bbccf57097b2e74564acf57e44'

    :param key: the shared secret (``str`` is encoded as UTF-8).
    :param key_id: the id the services know the key by (an RFC 9110 token).
    :param headers: the gray headers the request will carry, by HTTP name
        (case-insensitive), e.g. ``{"X-Gray-ID": "u1"}``; see
        :func:`canonical_string`.
    :param timestamp: the signing time, whole Unix seconds
        (``int(time.time())``).
    :return: ``t=<timestamp>,kid=<key_id>,v1=<lower-case hex HMAC-SHA256>``.
    :raises ValueError: for an empty key, an invalid key id, or headers
        :func:`canonical_string` refuses.
    """
    secret = _secret_bytes(key)
    if not secret:
        raise ValueError("the signing key is empty")
    if not isinstance(key_id, str) or _TOKEN.fullmatch(key_id) is None:
        raise ValueError(f"key id {key_id!r} is not an RFC 9110 token")
    stamp = _check_timestamp(timestamp)
    digest = hmac.digest(secret, _canonical(stamp, _canonical_values(headers)), "sha256")
    return f"t={stamp.decode('ascii')},kid={key_id},v1={digest.hex()}"


def _parse_signature(value: str) -> tuple[str, str | None, bytes] | None:
    """``(t, kid, digest)`` from a signature header value, or ``None``."""
    params: dict[str, str] = {}
    for item in value.split(","):
        match = _PARAM.fullmatch(item)
        if match is None:
            return None
        name, param = match.groups()
        if name in params:
            return None
        params[name] = param
    timestamp = params.get("t")
    digest = params.get("v1")
    kid = params.get("kid")
    if timestamp is None or _TIMESTAMP.fullmatch(timestamp) is None:
        return None
    if digest is None or _DIGEST.fullmatch(digest) is None:
        return None
    if kid is not None and _TOKEN.fullmatch(kid) is None:
        return None
    return timestamp, kid, bytes.fromhex(digest)
