"""
The gray chain
==============

The middleware :mod:`graywsgi.contrib.flask` and
:mod:`graywsgi.contrib.django` put around an application: :func:`build_chain`
builds it from settings (read by :mod:`graywsgi.contrib.settings`, each
layer's keys in :mod:`graywsgi.contrib.settings_layers`) into a
:class:`GrayChain`, and :func:`chain_of` finds it again.

.. code-block:: python

    from graywsgi.contrib import build_chain

    application = build_chain(wsgi_app, {"RULES": "rules.yaml"})

The chain, outermost first::

    [Metrics] -> Extraction -> [PreValidation] -> Router or CanarySplit -> app

Layers in brackets are not part of this version of graywsgi; their settings
are reserved (see :mod:`graywsgi.contrib.settings`), and they take their
place in the chain when they land.

Per worker or shared
--------------------

A chain is built once per process. Under gunicorn each worker has its own
breaker windows, extraction breaker and (with ``STATE`` unset) its own
kill switch; rules and rollout state are shared by every worker only through
a file or Redis store. :meth:`GrayChain.after_fork` is for gunicorn's
``post_fork``/``post_worker_init`` hooks; see ``docs/gunicorn.md``.
"""

from __future__ import annotations

import logging
import os
import typing as t

from graywsgi.contrib.settings import KeyName, _noop_app, _number, _plain_key, _Settings
from graywsgi.contrib.settings_layers import (
    _GUARD_KEYS,
    _ROUTER_ONLY,
    _colors,
    _extraction_options,
    _router,
    _trust,
)
from graywsgi.errors import ConfigurationError
from graywsgi.layers.extraction import Extraction
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.layers.split import CANARY, STABLE, CanarySplit
from graywsgi.state.rollout_state import StateStore
from graywsgi.state.rule_store import RuleStore

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["GrayChain", "build_chain", "chain_of"]

logger = logging.getLogger("graywsgi.contrib")


class GrayChain:
    """The middleware graywsgi built from settings; a WSGI application.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> def show(environ, start_response):
    ...     return Response(current.route)(environ, start_response)
    >>> chain = build_chain(show, {"PERCENT": 15})
    >>> Client(chain).get("/", headers={"X-Gray-ID": "user-11"}, buffered=True).text
    'canary'
    >>> sorted(chain.routes())
    ['canary', 'stable']

    :ivar entry: the outermost layer: what the server calls.
    :ivar app: the application the chain wraps.
    :ivar extraction: the :class:`~graywsgi.layers.extraction.Extraction` layer.
    :ivar router: the :class:`~graywsgi.layers.router.Router`, with ``RULES``.
    :ivar split: the :class:`~graywsgi.layers.split.CanarySplit`, without ``RULES``.
    """

    __slots__ = ("entry", "app", "extraction", "router", "split", "_ready_pid")

    def __init__(
        self,
        *,
        app: WSGIApplication,
        extraction: Extraction,
        router: Router | None = None,
        split: CanarySplit | None = None,
    ) -> None:
        if (router is None) == (split is None):
            raise ConfigurationError("a gray chain has a router or a split, exactly one")
        self.app = app
        self.extraction = extraction
        self.router = router
        self.split = split
        self.entry: WSGIApplication = extraction
        self._ready_pid = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.entry(environ, start_response)

    def __repr__(self) -> str:
        layer = "Router" if self.router is not None else f"CanarySplit({self.split and self.split.percent}%)"
        return f"<GrayChain Extraction -> {layer} -> {self.app!r}>"

    @property
    def guard(self) -> Guard | None:
        """The router's guard (breakers, kill switch), if any."""
        return self.router.guard if self.router is not None else None

    @property
    def rules(self) -> RuleStore | None:
        """The rule store the router reads, if any."""
        return self.router.store if self.router is not None else None

    @property
    def state(self) -> StateStore | None:
        """The rollout-state store (kill switch), if there is a guard."""
        guard = self.guard
        return guard.state if guard is not None else None

    def routes(self) -> frozenset[str]:
        """The route names requests can get: the clusters of the rules in
        force, or ``canary`` and ``stable`` for a split."""
        if self.router is not None:
            return frozenset(self.router.store.current().ruleset.clusters)
        return frozenset({CANARY, STABLE})

    def status(self) -> dict[str, t.Any]:
        """What is in force, JSON-serialisable (see :meth:`Router.status`)."""
        if self.split is not None:
            return {"percent": self.split.percent, "clusters": sorted(self.routes())}
        return self.router.status() if self.router is not None else {}

    def after_fork(self) -> dict[str, t.Any]:
        """Get this worker process ready; call it once per worker after fork.

        Reads the rule store and the state store once, so that a worker
        opens its own Redis connection and picks up the rules in force
        before its first request, and logs what it serves. Nothing made in
        a parent process is reused: stores and proxy pools are fork-aware
        already. Calling it again in the same process does nothing more.

        :return: ``pid``, ``rules_version`` (or ``None``) and ``killed``.
        """
        pid = os.getpid()
        rules = self.rules
        state = self.state
        summary: dict[str, t.Any] = {
            "pid": pid,
            "rules_version": rules.current().version_id if rules is not None else None,
            "killed": state.current().killed if state is not None else False,
        }
        if self._ready_pid != pid:
            self._ready_pid = pid
            logger.info("graywsgi ready in process %d: %s", pid, summary)
        return summary


def build_chain(
    app: WSGIApplication,
    settings: t.Mapping[str, object],
    *,
    key: KeyName = _plain_key,
) -> GrayChain:
    """Build the gray chain around ``app`` from ``settings``.

    :param app: the WSGI application to wrap.
    :param settings: setting name (without framework prefix) -> value;
        see :mod:`graywsgi.contrib.settings_layers`.
    :param key: how to spell a setting name in an error message
        (``lambda name: "GRAYWSGI_" + name``).
    :raises SettingsError: naming the key, for an unknown, reserved or
        invalid setting, or a rule file that cannot be loaded.
    """
    if not isinstance(settings, t.Mapping):
        raise ConfigurationError(f"graywsgi settings must be a dict, got {type(settings).__name__}")
    read = _Settings(settings, key)
    trust = _trust(read)
    extraction_options = _extraction_options(read)

    if read.has("RULES") and read.has("PERCENT"):
        read.fail("PERCENT", f"set either {key('RULES')} (a rule file) or {key('PERCENT')}, not both")
    router: Router | None = None
    split: CanarySplit | None = None
    inner: WSGIApplication
    if read.has("RULES"):
        if read.has("COLORS"):
            read.fail("COLORS", f"with {key('RULES')}, colours are the rule file's 'colors:' section")
        router = _router(read, app)
        inner = router
    else:
        for name in (*_ROUTER_ONLY, "GUARD", *_GUARD_KEYS):
            if read.has(name):
                read.fail(name, f"needs {key('RULES')}: it configures the Router, and without a rule file "
                                f"graywsgi runs the plain CanarySplit")
        split_options: dict[str, t.Any] = {
            "percent": read.get("PERCENT", lambda v: CanarySplit(_noop_app, percent=_number(v)).percent, 0.0)
        }
        if read.has("COLORS"):
            colors: dict[str, str] = read.get("COLORS", _colors, {})
            split_options["colors"] = colors
        split = CanarySplit(app, **split_options)
        inner = split
    # The PreValidation layer takes its place here, between Extraction and the route.
    extraction = Extraction(inner, trust=trust, **extraction_options)
    # The Metrics layer, when it lands, wraps extraction (it times the whole request).
    return GrayChain(app=app, extraction=extraction, router=router, split=split)


def chain_of(application: object) -> GrayChain | None:
    """The :class:`GrayChain` behind ``application``, if graywsgi built one.

    Works for a chain itself (what :func:`graywsgi.contrib.django.wrap`
    returns) and for a Flask app set up with
    :class:`graywsgi.contrib.flask.GrayWSGI`. For gunicorn hooks, which see
    the application object gunicorn loaded (``worker.wsgi``).
    """
    if isinstance(application, GrayChain):
        return application
    extensions = getattr(application, "extensions", None)
    if isinstance(extensions, t.Mapping):
        chain = getattr(extensions.get("graywsgi"), "chain", None)
        if isinstance(chain, GrayChain):
            return chain
    return None
