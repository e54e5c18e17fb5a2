"""graywsgi: thread-safe WSGI middleware for gray (canary) releases.

Wrap any WSGI application; every request then carries a
:class:`~graywsgi.core.context.GrayContext` that business code reads through
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
from graywsgi.rollout.admin import AdminApp
from graywsgi.core.context import (
    DegradeLevel,
    GrayContext,
    Source,
    carry_context,
    current,
    get_current,
)
from graywsgi.errors import ConfigurationError, GrayError, RequestError
from graywsgi.evolution.stages import Api, Exemption, ProtocolEvolution, Stage
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.extraction_breaker import ExtractionBreaker
from graywsgi.metrics.layer import Metrics, MetricsListener
from graywsgi.evolution.mirror import Mirror
from graywsgi.prevalidation.layer import PreValidation
from graywsgi.httputil.propagation import ContextExecutor, ContextFilter
from graywsgi.httputil.proxy import UpstreamProxy
from graywsgi.layers.router import Router
from graywsgi.rules.model import RuleSet
from graywsgi.layers.split import CanarySplit
from graywsgi.state.rule_store import FileStore, MemoryStore
from graywsgi.httputil.trust import TrustPolicy
from graywsgi.core.version import Version, VersionContext, VersionRange
from graywsgi._version import __version__ as __version__


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
