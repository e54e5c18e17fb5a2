"""
Canary split
============

Chooses the route of a request -- ``"canary"`` or ``"stable"`` -- and
records it in the gray context (``current.route``) and in the environ as the
``X-Route-To`` request header (``environ["HTTP_X_ROUTE_TO"]``) for the
layers and the application below.

.. code-block:: python

    from graywsgi import CanarySplit, Extraction
    app.wsgi_app = Extraction(CanarySplit(app.wsgi_app, percent=15))

Decision order
--------------

1. **Explicit colour.** ``X-Traffic-Color`` names a route through
   ``colors`` (default: ``canary`` and ``gray`` go to canary, ``stable`` to
   stable), compared ASCII case-insensitively. An unknown colour is ignored.
2. **Hash.** The gray id's bytes, exactly as the client sent them, are
   hashed with 32-bit FNV-1a (:mod:`graywsgi.core.hashing`) and the request goes
   to canary when ``fnv1a_32(id) % 100 < percent``. That is the seed Go
   gateway's rule (``fnv32a(id) % 100 < 15``), so both choose the same
   users. An empty or missing id is never canary.
3. **Default.** Everything else -- including a fallback context (degrade
   L2/L3) and any request the split cannot decide -- goes to stable.

Because a user's bucket never changes and canary owns the buckets
``0 .. percent-1``, raising ``percent`` only ever adds users to canary; no
one flips back to stable.

The split needs the context that :class:`~graywsgi.layers.extraction.Extraction`
binds. Used on its own, it wraps itself in an ``Extraction`` with default
options so it still has one.

An unexpected error while deciding is logged and the request goes to
stable.

Security note
-------------

The split honours whatever colour and gray id the context carries. Without
a trust boundary in front (a gateway that strips gray headers from outside
traffic, or :mod:`graywsgi.httputil.trust`), any client can choose canary by sending
``X-Traffic-Color: canary``.
"""

from __future__ import annotations

import logging
import math
import typing as t

from graywsgi.core.context import ENVIRON_KEY, GrayContext, with_decision
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction
from graywsgi.core.hashing import cached_fnv1a_32
from graywsgi.layers.events import note_internal_error
from graywsgi.layers.pipeline import DECISION, DecisionStep, Exchange, Pipeline

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["CanarySplit", "CANARY", "STABLE", "DEFAULT_COLORS"]

logger = logging.getLogger("graywsgi.split")

CANARY = "canary"
STABLE = "stable"

#: Default ``X-Traffic-Color`` values and the route each selects.
DEFAULT_COLORS: t.Mapping[str, str] = {"canary": CANARY, "gray": CANARY, "stable": STABLE}


class CanarySplit(Pipeline):
    """Send ``percent`` % of users (by hashed gray id) to the canary route.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> def show(environ, start_response):
    ...     return Response(current.route)(environ, start_response)
    >>> client = Client(Extraction(CanarySplit(show, percent=15)))
    >>> client.get("/", headers={"X-Gray-ID": "user-11"}, buffered=True).text
    'canary'
    >>> client.get("/", headers={"X-Gray-ID": "user-5"}, buffered=True).text
    'stable'

    :param app: the WSGI application to wrap.
    :param percent: share of hash buckets (0-100) owned by canary.
    :param colors: ``X-Traffic-Color`` value (case-insensitive) -> route.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        percent: float = 0.0,
        colors: t.Mapping[str, str] = DEFAULT_COLORS,
    ) -> None:
        if isinstance(percent, bool) or not isinstance(percent, (int, float)):
            raise ConfigurationError(f"percent must be a number from 0 to 100, got {percent!r}")
        if not (math.isfinite(percent) and 0 <= percent <= 100):
            raise ConfigurationError(f"percent must be from 0 to 100, got {percent!r}")
        for color, route in colors.items():
            if route not in (CANARY, STABLE):
                raise ConfigurationError(
                    f"colors[{color!r}] = {route!r}: a route must be {CANARY!r} or {STABLE!r}"
                )
        Pipeline.__init__(self, app)
        self.percent = float(percent)
        self.colors = {color.lower(): route for color, route in colors.items()}
        self._step = _SplitStep(self)
        self._standalone: Extraction | None = None
        self._fuse()

    _stage = DECISION

    def _standalone_extraction(self) -> Extraction:
        if self._standalone is None:
            self._standalone = Extraction(_noop)
        return self._standalone

    def decide(self, context: GrayContext) -> str:
        """Return the route for ``context`` (``"canary"`` or ``"stable"``)."""
        if context.is_fallback:
            return STABLE
        color = context.traffic_color
        if color is not None and color.isascii():
            route = self.colors.get(color.lower())
            if route is not None:
                return route
        key = context.gray_key
        if key and cached_fnv1a_32(key) % 100 < self.percent:
            return CANARY
        return STABLE


class _SplitStep(DecisionStep):
    """CanarySplit's step in a :class:`~graywsgi.layers.pipeline.Pipeline`."""

    def __init__(self, split: CanarySplit) -> None:
        self.split = split

    def route(self, environ: WSGIEnvironment, context: GrayContext, exchange: Exchange) -> WSGIApplication:
        """Decide the route, record it; the application to call."""
        try:
            route = self.split.decide(context)
        except Exception:
            logger.exception("graywsgi split failed; routing to stable")
            note_internal_error(environ, "split")
            route = STABLE
        # In the context (the pipeline binds it) and the environ.
        environ[ENVIRON_KEY] = with_decision(context, route, context.group, context.rules_version,
                                             context.route_reason)
        environ["HTTP_X_ROUTE_TO"] = route
        return self.split._app


def _noop(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:  # pragma: no cover
    raise AssertionError("a standalone Extraction only reads the context")
