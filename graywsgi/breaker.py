"""``graywsgi.breaker`` is now :mod:`graywsgi.core.breaker`; this import path keeps working.

Earlier documentation named ``graywsgi.breaker`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.core.breaker import *  # noqa: F403
from graywsgi.core.breaker import __all__ as __all__
