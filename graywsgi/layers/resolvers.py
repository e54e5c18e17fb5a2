"""
Resolvers
=========

A resolver turns what a request carries into facts about its user -- for
example a ``tenant`` and a ``role`` from a decoded user-context token. The
:class:`~graywsgi.layers.extraction.Extraction` layer runs its resolvers for
every request (:class:`~graywsgi.layers.identifiers.IdentifierReader` calls
:func:`run_resolvers`); a resolver that raises, or returns something
unusable, is logged and counted as a failed identifier, never propagated.
"""

from __future__ import annotations

import logging
import time
import typing as t

from graywsgi.core.context import GrayContext
from graywsgi.httputil.headers import valid_field_value, wire_text

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["RESOLVABLE", "Resolver", "run_resolvers", "resolver_result_problem"]

logger = logging.getLogger("graywsgi.extraction")

#: A resolver: the request's environ -> the context fields it sets, or ``None``.
Resolver = t.Callable[["WSGIEnvironment"], t.Optional[t.Mapping[str, str]]]

#: Context fields a resolver may set.
RESOLVABLE = frozenset({"tenant", "role", "gray_id"})

_SLOT = {name: index for index, name in enumerate(GrayContext._fields)}
_GRAY_KEY_SLOT = _SLOT["gray_key"]


def run_resolvers(
    resolvers: t.Iterable[Resolver], environ: WSGIEnvironment, slots: list[t.Any], max_length: int
) -> tuple[dict[str, str], list[str], float]:
    """Run the resolvers into ``slots``; return what they set, the
    failures and the slowest one's time."""
    resolved: dict[str, str] = {}
    failures: list[str] = []
    slowest = 0.0
    for resolver in resolvers:
        name = getattr(resolver, "__name__", type(resolver).__name__)
        started = time.perf_counter()
        try:
            result = resolver(environ)
        except Exception:
            logger.exception("graywsgi resolver %s raised; its result is dropped", name)
            failures.append(f"resolver:{name}")
            continue
        finally:
            slowest = max(slowest, time.perf_counter() - started)
        if result is None:
            continue
        problem = resolver_result_problem(result, max_length)
        if problem:
            logger.error("graywsgi resolver %s returned an unusable result: %s", name, problem)
            failures.append(f"resolver:{name}")
            continue
        for field_name, value in result.items():
            slots[_SLOT[field_name]] = value
            if field_name == "gray_id":
                slots[_GRAY_KEY_SLOT] = value.encode("utf-8")
            resolved[field_name] = value
    return resolved, failures, slowest


def resolver_result_problem(result: object, max_length: int) -> str:
    """Why a resolver's result cannot be used, or ``""``."""
    if not isinstance(result, t.Mapping):
        return f"expected a mapping or None, got {type(result).__name__}"
    for field_name, value in result.items():
        if field_name not in RESOLVABLE:
            return f"it may not set {field_name!r} (allowed: {sorted(RESOLVABLE)})"
        if not isinstance(value, str) or not value:
            return f"{field_name!r} must be a non-empty str"
        raw = value.encode("utf-8")
        if len(raw) > max_length or not valid_field_value(raw) or wire_text(raw) is None:
            return f"{field_name!r} is not a valid header field value"
    return ""
