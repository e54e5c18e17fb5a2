"""The ``graywsgi`` command line: :mod:`~graywsgi.cli.commands` parses the
command and serves ``rollback``, ``resume`` and ``state`` itself; ``demo``,
``rollout``/``simulate``, ``validate`` and ``checklist`` are served by the
module of that name. ``main`` (the console script ``graywsgi``) and
``build_parser`` are importable from here.
"""

from __future__ import annotations

from graywsgi.cli.commands import *  # noqa: F403
from graywsgi.cli.commands import __all__ as __all__
