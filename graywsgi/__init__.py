"""graywsgi: thread-safe WSGI middleware for gray (canary) releases.

Wrap any WSGI application; every request then carries a
:class:`~graywsgi.context.GrayContext` that business code reads through
:data:`graywsgi.current`::

    from graywsgi import CanarySplit, Extraction, current

    app.wsgi_app = Extraction(CanarySplit(app.wsgi_app, percent=15))

    @app.get("/")
    def index():
        return f"served by {current.route}"
"""

from __future__ import annotations

# First: it decides whether the compiled modules or their plain Python
# sources are imported (GRAYWSGI_PURE_PYTHON).
from graywsgi import speedups  # noqa: I001
from graywsgi.admin import AdminApp
from graywsgi.context import (
    DegradeLevel,
    GrayContext,
    Source,
    carry_context,
    current,
    get_current,
)
from graywsgi.errors import ConfigurationError, GrayError, RequestError
from graywsgi.evolution import Api, Exemption, ProtocolEvolution, Stage
from graywsgi.extraction import Extraction
from graywsgi.extraction_breaker import ExtractionBreaker
from graywsgi.metrics import Metrics, MetricsListener
from graywsgi.mirror import Mirror
from graywsgi.prevalidation import PreValidation
from graywsgi.propagation import ContextExecutor, ContextFilter
from graywsgi.proxy import UpstreamProxy
from graywsgi.router import Router
from graywsgi.rules import RuleSet
from graywsgi.split import CanarySplit
from graywsgi.store import FileStore, MemoryStore
from graywsgi.trust import TrustPolicy
from graywsgi.version import Version, VersionContext, VersionRange

__version__ = "0.1.0"

__all__ = [
    "AdminApp",
    "Api",
    "CanarySplit",
    "ConfigurationError",
    "ContextExecutor",
    "ContextFilter",
    "DegradeLevel",
    "Exemption",
    "Extraction",
    "ExtractionBreaker",
    "FileStore",
    "MemoryStore",
    "Metrics",
    "MetricsListener",
    "Mirror",
    "GrayContext",
    "GrayError",
    "PreValidation",
    "ProtocolEvolution",
    "RequestError",
    "Router",
    "RuleSet",
    "Source",
    "Stage",
    "TrustPolicy",
    "UpstreamProxy",
    "Version",
    "VersionContext",
    "VersionRange",
    "carry_context",
    "current",
    "get_current",
]
