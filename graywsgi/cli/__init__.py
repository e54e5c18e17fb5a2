"""The ``graywsgi`` command line: :mod:`~graywsgi.cli.main` parses the
command and hands it to the module for it (``demo``, ``rollout``/``simulate``,
``validate``, ``checklist``; ``rollback``, ``resume`` and ``state`` are in main).
"""

from __future__ import annotations

from graywsgi.cli.main import *  # noqa: F403
from graywsgi.cli.main import __all__ as __all__
