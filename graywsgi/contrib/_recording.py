"""Pieces the metrics backends share (graywsgi.contrib.prometheus, graywsgi.contrib.otel).

- :class:`BoundedValues` keeps the number of label (attribute) values per
  process bounded, so a client inventing ``X-Version`` values cannot make
  a backend's series grow without end;
- :class:`RateLimitedErrors` logs a recording failure at most once per
  interval: a broken backend never fails a request, nor floods the log.
"""

from __future__ import annotations

import logging
import re
import threading
import time

__all__ = ["BoundedValues", "RateLimitedErrors"]

_UNSAFE_VALUE = re.compile(r"[^A-Za-z0-9_.\-/]")


class BoundedValues:
    """Raw value -> sanitised value, for at most ``limit`` distinct raw values;
    later newcomers get ``other``, a missing value ``none``. Only ``A-Z a-z
    0-9 _ . - /`` survive (the rest becomes ``_``), cut to ``max_length``.

    >>> versions = BoundedValues(limit=2, max_length=8)
    >>> [versions.get(v) for v in ("1.5.0", "2 beta", None, "3.0.0", "1.5.0", "a-very-long-value")]
    ['1.5.0', '2_beta', 'none', 'other', '1.5.0', 'other']
    """

    __slots__ = ("_values", "_limit", "_max_length", "_lock")

    def __init__(self, limit: int, max_length: int) -> None:
        self._values: dict[str | None, str] = {None: "none"}
        self._limit = limit + 1  # "none" is free
        self._max_length = max_length
        self._lock = threading.Lock()

    def get(self, raw: str | None) -> str:
        value = self._values.get(raw)
        if value is not None:
            return value
        with self._lock:
            if raw in self._values:
                return self._values[raw]
            if len(self._values) >= self._limit:
                return "other"
            value = self._values[raw] = _UNSAFE_VALUE.sub("_", str(raw)[: self._max_length]) or "none"
            return value


class RateLimitedErrors:
    """Logs recording failures on ``logger`` (with the traceback), at most
    once per ``interval`` seconds; ``count`` counts them all."""

    def __init__(self, logger: logging.Logger, backend: str, interval: float) -> None:
        self._logger = logger
        self._backend = backend
        self._interval = interval
        self._next = float("-inf")
        self.count = 0

    def failed(self, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        self._logger.warning("graywsgi %s: %s failed; the request is unaffected", self._backend, what, exc_info=True)
