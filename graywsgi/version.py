"""``graywsgi.version`` is now :mod:`graywsgi.core.version`; this import path keeps working.

Earlier documentation named ``graywsgi.version`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.core.version import *  # noqa: F403
from graywsgi.core.version import __all__ as __all__
