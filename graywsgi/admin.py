"""``graywsgi.admin`` is now :mod:`graywsgi.rollout.admin`; this import path keeps working.

Earlier documentation named ``graywsgi.admin`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.rollout.admin import *  # noqa: F403
from graywsgi.rollout.admin import __all__ as __all__
