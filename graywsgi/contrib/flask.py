"""
Flask
=====

A Flask extension that puts the gray chain around ``app.wsgi_app``, so
Flask's own test client, the development server and gunicorn all run it.

.. code-block:: python

    from flask import Flask
    from graywsgi.contrib.flask import GrayWSGI

    app = Flask(__name__)
    app.config["GRAYWSGI_RULES"] = "rules.yaml"
    gray = GrayWSGI(app)

With an application factory, make the extension once and initialise it per
app::

    gray = GrayWSGI()

    def create_app():
        app = Flask(__name__)
        app.config.from_object("settings")
        gray.init_app(app)
        return app

Settings
--------

Every ``app.config`` key starting ``GRAYWSGI_`` is a graywsgi setting: the
rest of the key is one of the names listed in :mod:`graywsgi.contrib.settings_layers`
(``GRAYWSGI_RULES``, ``GRAYWSGI_PERCENT``, ``GRAYWSGI_TRUSTED_NETWORKS``,
...). They are read once, by :meth:`GrayWSGI.init_app`; an unknown or
invalid one raises :class:`~graywsgi.contrib.settings.SettingsError` naming the key.
Changing ``app.config`` afterwards changes nothing -- rules change through
the rule file.

What the app sees
-----------------

- :data:`graywsgi.current` in views, ``before_request``, ``after_request``
  and ``teardown_request`` handlers, error handlers and streamed responses;
- ``gray`` in templates: the request's :class:`~graywsgi.core.context.GrayContext`
  (``{{ gray.route }}``), or ``None`` when a template is rendered outside a
  request graywsgi handled;
- ``app.extensions["graywsgi"]``: a :class:`FlaskGray` holding the extension
  and the :class:`~graywsgi.contrib.chain.GrayChain` (``.chain.status()``,
  ``.chain.state.rollback()``).

Blueprints bound to routes
--------------------------

:meth:`GrayWSGI.route_blueprint` serves a blueprint only to requests routed
to the given routes (clusters)::

    v2 = Blueprint("v2", __name__, url_prefix="/v2")
    gray.route_blueprint(v2, "canary")

For any other request the blueprint's endpoints do not exist:

- ``otherwise="404"`` (default): the request is answered as an unknown URL
  is -- through the app's 404 handler -- and none of the blueprint's hooks
  run;
- ``otherwise="fallthrough"``: the URL is matched again without the
  blueprint's rules, so a canary blueprint can override some endpoints of
  the stable app at the same URLs and everyone else is served by the
  stable ones. Register the canary blueprint *before* the stable views, so
  that its rules win for canary requests.

A request that graywsgi did not route (for example under
``app.test_request_context()``) is served by no bound blueprint.
"""

from __future__ import annotations

import threading
import typing as t
import weakref
from dataclasses import dataclass, field

from flask import Blueprint, Flask, request
from flask.signals import request_started
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, MapAdapter, Rule

from graywsgi.core.context import GrayContext, get_current
from graywsgi.contrib.chain import GrayChain, build_chain
from graywsgi.errors import ConfigurationError

__all__ = ["GrayWSGI", "FlaskGray", "CONFIG_PREFIX", "EXTENSION_KEY"]

#: Prefix of the ``app.config`` keys graywsgi reads.
CONFIG_PREFIX = "GRAYWSGI_"
#: Key of :class:`FlaskGray` in ``app.extensions``.
EXTENSION_KEY = "graywsgi"

Otherwise = t.Literal["404", "fallthrough"]
_OTHERWISE: frozenset[str] = frozenset({"404", "fallthrough"})


def _config_key(name: str) -> str:
    return CONFIG_PREFIX + name


@dataclass(frozen=True)
class _Binding:
    routes: frozenset[str]
    otherwise: Otherwise


@dataclass
class FlaskGray:
    """What graywsgi keeps per app, in ``app.extensions["graywsgi"]``.

    :ivar extension: the :class:`GrayWSGI` that initialised the app.
    :ivar chain: the middleware around ``app.wsgi_app``.
    """

    extension: GrayWSGI
    chain: GrayChain
    _maps: dict[str | None, tuple[Map, dict[int, Rule]]] = field(default_factory=dict, repr=False)
    _maps_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class GrayWSGI:
    """The graywsgi Flask extension.

    >>> from flask import Flask
    >>> from graywsgi import current
    >>> app = Flask("shop")
    >>> app.config["GRAYWSGI_PERCENT"] = 15
    >>> @app.get("/")
    ... def index():
    ...     return current.route
    >>> gray = GrayWSGI(app)
    >>> app.test_client().get("/", headers={"X-Gray-ID": "user-11"}).text
    'canary'
    >>> sorted(app.extensions["graywsgi"].chain.routes())
    ['canary', 'stable']

    :param app: the app to initialise now; leave it out with an application
        factory and call :meth:`init_app`.
    :param template_name: the name the gray context has in templates.
    """

    def __init__(self, app: Flask | None = None, *, template_name: str = "gray") -> None:
        if not isinstance(template_name, str) or not template_name.isidentifier():
            raise ConfigurationError(f"template_name must be an identifier, got {template_name!r}")
        self.template_name = template_name
        self._bindings: dict[str, _Binding] = {}
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app`` in the chain its ``GRAYWSGI_*`` config describes.

        :raises SettingsError: naming the config key, for a bad setting.
        :raises ConfigurationError: if graywsgi is already set up on ``app``,
            or a bound blueprint names a route the app's rules do not have.
        """
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(f"graywsgi is already initialised on app {app.name!r}")
        settings = {
            key[len(CONFIG_PREFIX):]: value for key, value in app.config.items() if key.startswith(CONFIG_PREFIX)
        }
        chain = build_chain(app.wsgi_app, settings, key=_config_key)
        for name, binding in self._bindings.items():
            _check_routes(chain, name, binding.routes)
        app.wsgi_app = chain.entry  # type: ignore[method-assign, assignment]
        app.extensions[EXTENSION_KEY] = FlaskGray(extension=self, chain=chain)
        app.context_processor(self._template_context)
        request_started.connect(self._enforce_bindings, app, weak=False)
        self._apps.add(app)

    def chain(self, app: Flask | None = None) -> GrayChain:
        """The chain of ``app`` (default: the current app)."""
        if app is None:
            from flask import current_app

            app = current_app._get_current_object()  # type: ignore[attr-defined]
        state = app.extensions.get(EXTENSION_KEY) if app is not None else None
        if not isinstance(state, FlaskGray):
            raise RuntimeError("graywsgi is not initialised on this app: call GrayWSGI(app) or init_app(app)")
        return state.chain

    def route_blueprint(
        self, blueprint: Blueprint | str, *routes: str, otherwise: Otherwise = "404"
    ) -> None:
        """Serve ``blueprint`` only to requests routed to one of ``routes``.

        Call it before or after :meth:`init_app` and before or after the
        blueprint is registered; it applies to every app this extension
        initialises. Binding the same blueprint again replaces the binding.

        :param blueprint: the blueprint, or the name it is registered under
            (``"v2"``; a nested one as ``"parent.child"``).
        :param routes: route (cluster) names, e.g. ``"canary"``.
        :param otherwise: ``"404"`` or ``"fallthrough"`` (see above).
        :raises ConfigurationError: for no routes, a route an initialised
            app's rules do not have, or an unknown ``otherwise``.
        """
        name = blueprint.name if isinstance(blueprint, Blueprint) else blueprint
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"route_blueprint needs a Blueprint or its name, got {blueprint!r}")
        if not routes:
            raise ConfigurationError(f"route_blueprint({name!r}) needs at least one route name")
        for route in routes:
            if not isinstance(route, str) or not route:
                raise ConfigurationError(f"route_blueprint({name!r}): {route!r} is not a route name")
        if otherwise not in _OTHERWISE:
            raise ConfigurationError(
                f"route_blueprint({name!r}): otherwise must be '404' or 'fallthrough', got {otherwise!r}"
            )
        bound = frozenset(routes)
        for app in list(self._apps):
            state = app.extensions.get(EXTENSION_KEY)
            if isinstance(state, FlaskGray):
                _check_routes(state.chain, name, bound)
                state._maps.clear()
        self._bindings[name] = _Binding(bound, otherwise)

    def _template_context(self) -> dict[str, GrayContext | None]:
        return {self.template_name: get_current()}

    def _denial(self, endpoint: str, route: str | None) -> _Binding | None:
        """The binding that keeps ``endpoint`` from ``route``, if any."""
        bindings = self._bindings
        path = endpoint.rpartition(".")[0]
        while path:
            binding = bindings.get(path) or bindings.get(path.rpartition(".")[2])
            if binding is not None and route not in binding.routes:
                return binding
            path = path.rpartition(".")[0]
        return None

    def _enforce_bindings(self, sender: Flask, **extra: object) -> None:
        """``request_started`` receiver: before any hook of the blueprint runs."""
        if not self._bindings:
            return
        rule = request.url_rule
        if rule is None:
            return
        context = get_current()
        route = context.route if context is not None else None
        binding = self._denial(rule.endpoint, route)
        if binding is None:
            return
        if binding.otherwise == "404":
            _not_found()
            return
        state = sender.extensions.get(EXTENSION_KEY)
        if isinstance(state, FlaskGray):
            self._match_without_denied(sender, state, route)
        else:  # pragma: no cover - request_started is connected per initialised app
            _not_found()

    def _match_without_denied(self, app: Flask, state: FlaskGray, route: str | None) -> None:
        url_map, originals = self._map_for(app, state, route)
        from flask.globals import request_ctx

        full: MapAdapter | None = request_ctx.url_adapter
        if full is None:  # pragma: no cover - Flask always binds one for a request
            _not_found()
            return
        adapter = MapAdapter(
            url_map,
            full.server_name,
            full.script_name,
            full.subdomain,
            full.url_scheme,
            full.path_info,
            full.default_method,
            full.query_args,
        )
        try:
            matched, view_args = adapter.match(return_rule=True)
        except HTTPException as exc:  # NotFound, MethodNotAllowed, RequestRedirect
            request.url_rule = None
            request.view_args = None
            request.routing_exception = exc
            return
        request.url_rule = originals[id(matched)]
        request.view_args = dict(view_args)
        request.routing_exception = None

    def _map_for(self, app: Flask, state: FlaskGray, route: str | None) -> tuple[Map, dict[int, Rule]]:
        """The app's URL map without the rules ``route`` may not reach.

        Built on first use per route (Flask allows no new rules once it has
        served a request) from unbound copies of the rules; ``originals``
        maps each copy back to the app's own rule.
        """
        found = state._maps.get(route)
        if found is not None:
            return found
        with state._maps_lock:
            found = state._maps.get(route)
            if found is None:
                source = app.url_map
                originals: dict[int, Rule] = {}
                copies = []
                for rule in source.iter_rules():
                    if rule.endpoint is not None and self._denial(rule.endpoint, route) is not None:
                        continue
                    copy = rule.empty()
                    originals[id(copy)] = rule
                    copies.append(copy)
                url_map = Map(
                    copies,
                    default_subdomain=source.default_subdomain,
                    strict_slashes=source.strict_slashes,
                    merge_slashes=source.merge_slashes,
                    redirect_defaults=source.redirect_defaults,
                    converters=source.converters,
                    sort_parameters=source.sort_parameters,
                    sort_key=source.sort_key,
                    host_matching=source.host_matching,
                )
                found = (url_map, originals)
                state._maps[route] = found
        return found


def _not_found() -> None:
    request.url_rule = None
    request.view_args = None
    request.routing_exception = NotFound()


def _check_routes(chain: GrayChain, blueprint: str, routes: frozenset[str]) -> None:
    known = chain.routes()
    unknown = sorted(routes - known)
    if unknown:
        raise ConfigurationError(
            f"route_blueprint({blueprint!r}): {', '.join(map(repr, unknown))} is not a route of this app "
            f"(routes: {', '.join(sorted(known))})"
        )
