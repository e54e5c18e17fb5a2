"""``graywsgi.mirror`` is now :mod:`graywsgi.evolution.mirror`; this import path keeps working.

Earlier documentation named ``graywsgi.mirror`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.evolution.mirror import *  # noqa: F403
from graywsgi.evolution.mirror import __all__ as __all__
