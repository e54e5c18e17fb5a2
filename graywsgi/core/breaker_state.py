"""The states every graywsgi breaker moves through, and the error for a move
its state does not allow.

Shared by the route breaker (:mod:`graywsgi.core.breaker`) and the
extraction breaker (:mod:`graywsgi.layers.extraction_breaker`): both are
closed (traffic flows), open (none does) or half-open (a probe decides).
"""

from __future__ import annotations

import enum

from graywsgi.errors import GrayError

__all__ = ["BreakerState", "IllegalTransition"]


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class IllegalTransition(GrayError):
    """An event that the current state does not accept; nothing changed."""
