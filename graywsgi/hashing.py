"""``graywsgi.hashing`` is now :mod:`graywsgi.core.hashing`; this import path keeps working.

Earlier documentation named ``graywsgi.hashing`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.core.hashing import *  # noqa: F403
from graywsgi.core.hashing import __all__ as __all__
