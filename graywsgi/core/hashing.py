"""
Hashing for the canary split
============================

The split must put a user in exactly the bucket the seed Go gateway puts
them in, so it uses the same function: 32-bit FNV-1a (Go's ``hash/fnv``
``New32a``) over the identifier's bytes, and ``hash % 100`` as the bucket.
:data:`cached_fnv1a_32` is the same function behind a bounded cache.
"Canary at P %" is then ``fnv1a_32(id) % 100 < P`` on both sides.

A ``str`` is hashed as its UTF-8 bytes. Callers that hold the bytes exactly
as the client sent them (a WSGI header is latin-1 decoded, PEP 3333) should
pass those bytes; :class:`graywsgi.layers.extraction.Extraction` does.

>>> hex(fnv1a_32(b"foobar"))
'0xbf9cf968'
>>> bucket("user-42")
99
"""

from __future__ import annotations

import functools

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

__all__ = ["fnv1a_32", "bucket", "bucket_of", "cached_fnv1a_32"]

_OFFSET_BASIS = 0x811C9DC5
_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a_32(data: bytes | str) -> int:
    """Return the 32-bit FNV-1a hash of ``data``.

    :param data: bytes, or a ``str`` which is hashed as UTF-8.
    :return: an integer in ``[0, 2**32)``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if type(data) is bytes:
        return _fnv1a_bytes(data)
    h = _OFFSET_BASIS
    for byte in data:
        h = ((h ^ byte) * _PRIME) & _MASK
    return h


def _fnv1a_bytes(data: bytes) -> int:
    """:func:`fnv1a_32` of ``data`` (a ``bytes``); a C loop when compiled."""
    h = _OFFSET_BASIS
    if cython.compiled:
        # h is a C unsigned 32-bit int: the product wraps as ``& _MASK`` does
        # (0x01000193 is _PRIME as a literal, so that the C compiler knows it).
        for byte in data:
            h = (h ^ byte) * 0x01000193
        return h
    for byte in data:
        h = ((h ^ byte) * _PRIME) & _MASK
    return h


def bucket(data: bytes | str, modulus: int = 100) -> int:
    """Return ``fnv1a_32(data) % modulus``.

    :param data: the key, as for :func:`fnv1a_32`.
    :param modulus: the number of buckets; must be positive.
    :raises ValueError: if ``modulus`` is not positive.
    """
    if modulus <= 0:
        raise ValueError(f"modulus must be positive, got {modulus!r}")
    return fnv1a_32(data) % modulus


#: :func:`fnv1a_32` behind a bounded LRU cache, for the split's hot path.
#: Pure-Python FNV-1a costs about 0.1 us per byte; users come back, so the
#: split remembers the last 8,192 keys (at most a few MB, keys being capped
#: by :class:`~graywsgi.layers.extraction.Extraction`'s ``max_length``).
cached_fnv1a_32 = functools.lru_cache(maxsize=8192)(fnv1a_32)


def bucket_of(key: bytes) -> int:
    """The split's bucket of ``key``: ``fnv1a_32(key) % 100``.

    Compiled, the hash is computed each time (a few dozen nanoseconds);
    as plain Python it comes from :data:`cached_fnv1a_32`.

    >>> bucket_of(b"user-42")
    99
    """
    if cython.compiled and type(key) is bytes:
        return _fnv1a_bytes(key) % 100
    return cached_fnv1a_32(key) % 100
