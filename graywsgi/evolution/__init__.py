"""Protocol evolution: moving clients from an old API version to a new one
(:mod:`~graywsgi.evolution.stages`, configured with the APIs of
:mod:`~graywsgi.evolution.api`), with traffic mirrored to the new version
(:mod:`~graywsgi.evolution.mirror`; its captures in
:mod:`~graywsgi.evolution.mirror_capture`, its comparison in
:mod:`~graywsgi.evolution.mirror_diff`).

The names of :mod:`graywsgi.evolution.stages` are importable from here, as
they were when ``graywsgi.evolution`` was one module.
"""

from __future__ import annotations

from graywsgi.evolution.stages import *  # noqa: F403
from graywsgi.evolution.stages import __all__ as __all__
