"""Session-wide pytest setup (the tests' own fixtures are in tests/conftest.py).

With the compiled fast path built (graywsgi/speedups.py), a module such as
``graywsgi.pipeline`` is imported from its C extension, not from the ``.py``
file ``--doctest-modules`` collects. pytest would refuse that as an "import
file mismatch"; the doctests are meant to run against whichever form is in
use, so the check is turned off.
"""

import os

os.environ.setdefault("PY_IGNORE_IMPORTMISMATCH", "1")
