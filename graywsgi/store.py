"""``graywsgi.store`` is now :mod:`graywsgi.state.rule_store`; this import path keeps working.

Earlier documentation named ``graywsgi.store`` before the package was grouped
by concern (docs/architecture.md); every public name of the new module is here.
"""

from graywsgi.state.rule_store import *  # noqa: F403
from graywsgi.state.rule_store import __all__ as __all__
