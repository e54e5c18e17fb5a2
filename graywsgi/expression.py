"""``graywsgi.expression`` is now :mod:`graywsgi.rules.expression`; this import path keeps working.

Earlier documentation named ``graywsgi.expression`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.rules.expression import *  # noqa: F403
from graywsgi.rules.expression import __all__ as __all__
