"""``graywsgi.redis_store`` is now :mod:`graywsgi.state.redis_store`; this import path keeps working.

Earlier documentation named ``graywsgi.redis_store`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.state.redis_store import *  # noqa: F403
from graywsgi.state.redis_store import __all__ as __all__
