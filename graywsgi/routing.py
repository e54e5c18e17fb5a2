"""``graywsgi.routing`` is now :mod:`graywsgi.rules.routing`; this import path keeps working.

Earlier documentation named ``graywsgi.routing`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.rules.routing import *  # noqa: F403
from graywsgi.rules.routing import __all__ as __all__
