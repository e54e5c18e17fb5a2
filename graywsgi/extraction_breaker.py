"""``graywsgi.extraction_breaker`` is now :mod:`graywsgi.layers.extraction_breaker`; this import path keeps working.

Earlier documentation named ``graywsgi.extraction_breaker`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.layers.extraction_breaker import *  # noqa: F403
from graywsgi.layers.extraction_breaker import __all__ as __all__
