"""Request ids for requests that arrive without ``X-Request-ID``.

Each id is 32 lowercase hex digits: 128 bits from :func:`os.urandom`. The
bits are read for :data:`BATCH` ids at a time, because the system call,
cheap in a tight loop (about 0.4 µs), costs several microseconds inside a
busy server, where each request's other system calls leave it cold
(``bench/in_worker.py``: about 4 µs per request in a gunicorn worker).

- **Threads** never get the same id: ``deque.popleft`` and ``deque.extend``
  are atomic.
- **Forked processes** (gunicorn workers, ``multiprocessing``) never get
  the same id: the ids drawn but not yet handed out are dropped in the
  child (:func:`os.register_at_fork`), which reads its own. uWSGI forks
  its workers without running Python's fork hooks unless
  ``py-call-osafterfork`` is set; without it (or ``lazy-apps``), a master
  that served a request before forking would leave its pool to every
  worker. The same setting is what graywsgi's other per-process state
  (the Metrics socket) relies on.

Nothing is read at import: the first request fills the pool.
"""

from __future__ import annotations

import collections
import os

__all__ = ["new_request_id", "BATCH"]

#: Ids read per ``os.urandom`` call (16 bytes each).
BATCH = 128

_pool: collections.deque[str] = collections.deque()


def new_request_id() -> str:
    """A fresh request id: 32 lowercase hex digits, 128 random bits."""
    try:
        return _pool.popleft()
    except IndexError:
        digits = os.urandom(16 * BATCH).hex()
        ids = [digits[start : start + 32] for start in range(0, len(digits), 32)]
        _pool.extend(ids[1:])
        return ids[0]


os.register_at_fork(after_in_child=_pool.clear)
