"""``graywsgi.proxy`` is now :mod:`graywsgi.httputil.proxy`; this import path keeps working.

Earlier documentation named ``graywsgi.proxy`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.httputil.proxy import *  # noqa: F403
from graywsgi.httputil.proxy import __all__ as __all__
