"""``graywsgi.config`` is now :mod:`graywsgi.rules.files`; this import path keeps working.

Earlier documentation named ``graywsgi.config`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.rules.files import *  # noqa: F403
from graywsgi.rules.files import __all__ as __all__
