"""``graywsgi.extraction`` is now :mod:`graywsgi.layers.extraction`; this import path keeps working.

Earlier documentation named ``graywsgi.extraction`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.layers.extraction import *  # noqa: F403
from graywsgi.layers.extraction import __all__ as __all__
