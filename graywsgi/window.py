"""``graywsgi.window`` is now :mod:`graywsgi.core.window`; this import path keeps working.

Earlier documentation named ``graywsgi.window`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.core.window import *  # noqa: F403
from graywsgi.core.window import __all__ as __all__
