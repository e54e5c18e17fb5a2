"""``graywsgi.propagation`` is now :mod:`graywsgi.httputil.propagation`; this import path keeps working.

Earlier documentation named ``graywsgi.propagation`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.httputil.propagation import *  # noqa: F403
from graywsgi.httputil.propagation import __all__ as __all__
