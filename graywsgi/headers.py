"""``graywsgi.headers`` is now :mod:`graywsgi.httputil.headers`; this import path keeps working.

Earlier documentation named ``graywsgi.headers`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.httputil.headers import *  # noqa: F403
from graywsgi.httputil.headers import __all__ as __all__
