"""Opening the rollout state's store from a location string.

``graywsgi rollback --state LOCATION``, the checklist's ``state:`` checks and the
framework settings name the state store with one string: a file path, or a Redis
URL. :func:`open_state_store` turns that string into the store, so the
file-based module (:mod:`graywsgi.state.rollout_state`) and the Redis one
(:mod:`graywsgi.state.redis_store`) need not know of each other.
"""

from __future__ import annotations

from graywsgi.errors import ConfigurationError
from graywsgi.state.rollout_state import FileStateStore, StateStore

__all__ = ["open_state_store"]


def open_state_store(location: str, *, check_interval: float = 0.05, timeout: float = 0.05) -> StateStore:
    """A store from a location: a file path, or ``redis://host:port/db#key``.

    :param timeout: Redis socket timeout (tools writing the state want more
        than the request path's 50 ms).
    :raises ConfigurationError: if the location cannot be used.
    """
    if location.startswith(("redis://", "rediss://", "unix://")):
        from graywsgi.state.redis_store import RedisStateStore  # redis-py only when asked

        url, _, key = location.partition("#")
        return RedisStateStore(
            url, key=key or "graywsgi:state", check_interval=check_interval, timeout=timeout
        )
    if "://" in location:
        raise ConfigurationError(f"state location {location!r}: use a file path or redis://host:port/db#key")
    return FileStateStore(location, check_interval=check_interval)
