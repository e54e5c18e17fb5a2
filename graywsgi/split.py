"""``graywsgi.split`` is now :mod:`graywsgi.layers.split`; this import path keeps working.

Earlier documentation named ``graywsgi.split`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.layers.split import *  # noqa: F403
from graywsgi.layers.split import __all__ as __all__
