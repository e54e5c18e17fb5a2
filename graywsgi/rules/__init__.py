"""Rules: what a rule set says (:mod:`~graywsgi.rules.model`), how it is
read from a file (:mod:`~graywsgi.rules.files`) and checked, compiled into lookup
tables (:mod:`~graywsgi.rules.routing`) and applied to one request
(:mod:`~graywsgi.rules.decision`); expressions; rollout plans as data.

The names of :mod:`graywsgi.rules.model` are importable from here, as they were
when ``graywsgi.rules`` was one module.
"""

from __future__ import annotations

from graywsgi.rules.model import *  # noqa: F403
from graywsgi.rules.model import __all__ as __all__
