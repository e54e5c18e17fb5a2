"""Pre-validation: the :class:`~graywsgi.prevalidation.layer.PreValidation`
layer, the OpenAPI documents it reads (:mod:`~graywsgi.prevalidation.openapi`)
and the ``x-gray-rules`` they carry (:mod:`~graywsgi.prevalidation.gray_rules`);
how it reads and parses a request body (:mod:`~graywsgi.prevalidation.body`).

The names of :mod:`graywsgi.prevalidation.layer` are importable from here, as
they were when ``graywsgi.prevalidation`` was one module.
"""

from __future__ import annotations

from graywsgi.prevalidation.layer import *  # noqa: F403
from graywsgi.prevalidation.layer import __all__ as __all__
