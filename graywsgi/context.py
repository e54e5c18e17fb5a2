"""``graywsgi.context`` is now :mod:`graywsgi.core.context`; this import path keeps working.

Earlier documentation named ``graywsgi.context`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.core.context import *  # noqa: F403
from graywsgi.core.context import __all__ as __all__
