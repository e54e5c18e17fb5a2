"""``graywsgi.router`` is now :mod:`graywsgi.layers.router`; this import path keeps working.

Earlier documentation named ``graywsgi.router`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.layers.router import *  # noqa: F403
from graywsgi.layers.router import __all__ as __all__
