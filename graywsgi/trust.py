"""``graywsgi.trust`` is now :mod:`graywsgi.httputil.trust`; this import path keeps working.

Earlier documentation named ``graywsgi.trust`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.httputil.trust import *  # noqa: F403
from graywsgi.httputil.trust import __all__ as __all__
