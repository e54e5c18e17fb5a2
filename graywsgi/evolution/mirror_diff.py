"""
Mirror comparison
=================

How :class:`~graywsgi.evolution.mirror.Mirror` compares the application's
answer with the shadow's: each side is :class:`Captured` (by
:mod:`graywsgi.evolution.mirror_capture`) and :func:`compare_responses` lists
what differs. The mirror counts and samples the differences
(:meth:`~graywsgi.evolution.mirror.Mirror.report`).

Comparison
----------

- the status code;
- the ``compare_headers`` (default ``Content-Type``), case-insensitively;
- the body: when both parse as JSON, as JSON with the ``ignore_fields``
  removed -- a name without a dot (``request_id``) is dropped at any
  depth, a dotted path (``meta.generated_at``) only there (list items do
  not add to the path); otherwise byte for byte. Bodies are captured up
  to ``max_response`` bytes; past that the body is not compared
  (``body_not_compared``).
"""

from __future__ import annotations

import json
import typing as t

__all__ = ["Captured", "compare_responses"]


class Captured(t.NamedTuple):
    """One side of a comparison: status, headers, body (``None``: too large)."""

    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


def _strip(document: t.Any, ignore: frozenset[str], path: str) -> t.Any:
    if isinstance(document, dict):
        kept = {}
        for key, value in document.items():
            dotted = f"{path}.{key}" if path else str(key)
            if key in ignore or dotted in ignore:
                continue
            kept[key] = _strip(value, ignore, dotted)
        return kept
    if isinstance(document, list):
        return [_strip(item, ignore, path) for item in document]
    return document


def _json(body: bytes) -> tuple[bool, t.Any]:
    try:
        return True, json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False, None


def _header(headers: t.Sequence[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None


def compare_responses(
    primary: Captured,
    shadow: Captured,
    *,
    headers: t.Iterable[str] = ("content-type",),
    ignore_fields: t.Iterable[str] = (),
) -> list[tuple[str, str]]:
    """The differences between two responses, as ``(kind, description)``.

    >>> a = Captured(200, (("Content-Type", "application/json"),), b'{"id": 1, "at": 5}')
    >>> b = Captured(200, (("content-type", "application/json"),), b'{"id": 1, "at": 9}')
    >>> compare_responses(a, b, ignore_fields=["at"])
    []
    >>> compare_responses(a, b)
    [('body', 'JSON bodies differ')]

    ``kind`` is ``status``, ``header`` or ``body``. A side whose body is
    ``None`` (too large to capture) is compared on status and headers only.
    """
    differences: list[tuple[str, str]] = []
    if primary.status != shadow.status:
        differences.append(("status", f"status {primary.status} != {shadow.status}"))
    for name in headers:
        lower = name.lower()
        mine, theirs = _header(primary.headers, lower), _header(shadow.headers, lower)
        if mine != theirs:
            differences.append(("header", f"{name}: {mine!r} != {theirs!r}"))
    if primary.body is not None and shadow.body is not None:
        ok_a, doc_a = _json(primary.body)
        ok_b, doc_b = _json(shadow.body)
        if ok_a and ok_b:
            ignore = frozenset(ignore_fields)
            if _strip(doc_a, ignore, "") != _strip(doc_b, ignore, ""):
                differences.append(("body", "JSON bodies differ"))
        elif primary.body != shadow.body:
            differences.append(("body", f"bodies differ ({len(primary.body)} != {len(shadow.body)} bytes)"))
    return differences
