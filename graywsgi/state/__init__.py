"""Shared state and stores: the rollout state every worker agrees on (kill
switch, breakers; :mod:`~graywsgi.state.rollout_state`), the store of the rule
set in force (:mod:`~graywsgi.state.rule_store`) and their Redis forms
(:mod:`~graywsgi.state.redis_store`).

The names of :mod:`graywsgi.state.rollout_state` are importable from here, as
they were when ``graywsgi.state`` was one module.
"""

from __future__ import annotations

from graywsgi.state import locations, rollout_state
from graywsgi.state.locations import *  # noqa: F403
from graywsgi.state.rollout_state import *  # noqa: F403

__all__ = [*locations.__all__, *rollout_state.__all__]
