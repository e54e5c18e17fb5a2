"""``graywsgi.checklist`` is now :mod:`graywsgi.rollout.checklist`; this import path keeps working.

Earlier documentation named ``graywsgi.checklist`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.rollout.checklist import *  # noqa: F403
from graywsgi.rollout.checklist import __all__ as __all__
