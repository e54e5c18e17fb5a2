"""``graywsgi.guard`` is now :mod:`graywsgi.layers.guard`; this import path keeps working.

Earlier documentation named ``graywsgi.guard`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.layers.guard import *  # noqa: F403
from graywsgi.layers.guard import __all__ as __all__
