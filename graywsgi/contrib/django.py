"""
Django
======

Wrap the project's WSGI application in the gray chain, in its ``wsgi.py``:

.. code-block:: python

    import os

    from django.core.wsgi import get_wsgi_application
    from graywsgi.contrib.django import wrap

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    application = wrap(get_wsgi_application())

gunicorn, uWSGI and ``manage.py runserver`` (through ``WSGI_APPLICATION``)
then serve every request through it.

Settings
--------

A ``GRAYWSGI`` dict in the Django settings, with the setting names listed
in :mod:`graywsgi.contrib.settings_layers`::

    GRAYWSGI = {
        "RULES": BASE_DIR / "rules.yaml",
        "TRUSTED_NETWORKS": ["10.0.0.0/8"],
        "STATE": "/run/mysite/graywsgi-state.json",
    }

It is read once, by :func:`wrap`; an unknown or invalid entry raises
:class:`~graywsgi.contrib.settings.SettingsError` naming it (``GRAYWSGI['PERCNT']:
unknown graywsgi setting; did you mean GRAYWSGI['PERCENT']?``). Without a
``GRAYWSGI`` setting every default applies: the split runs at 0 %, so only
an explicit ``X-Traffic-Color`` reaches canary.

In views and templates
----------------------

- :data:`graywsgi.current` -- ``current.route``, ``current.gray_id``, ... --
  in views, middleware, signal handlers and streamed responses; the same
  object is ``request.META["graywsgi.context"]``;
- :func:`routes_only` keeps a view to some routes (404 for the others);
- :func:`context_processor` puts it in templates as ``gray``
  (``"graywsgi.contrib.django.context_processor"`` in the template
  engine's ``context_processors``).

Django's test ``Client`` calls the handler directly, not the WSGI
application ``wsgi.py`` made, so it runs no WSGI middleware; drive the
wrapped application with :class:`werkzeug.test.Client` instead (as
graywsgi's own tests do) to test views that read the gray context.
"""

from __future__ import annotations

import functools
import typing as t

from graywsgi.core.context import GrayContext, get_current
from graywsgi.contrib.chain import GrayChain, build_chain
from graywsgi.contrib.settings import SettingsError
from graywsgi.errors import ConfigurationError

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication

__all__ = ["wrap", "routes_only", "context_processor", "SETTING"]

#: The Django setting graywsgi reads.
SETTING = "GRAYWSGI"

P = t.ParamSpec("P")
R = t.TypeVar("R")


def _setting_key(name: str) -> str:
    return f"{SETTING}[{name!r}]"


def wrap(application: WSGIApplication, *, settings: t.Mapping[str, object] | None = None) -> GrayChain:
    """Return ``application`` wrapped in the gray chain.

    >>> from werkzeug.test import Client
    >>> from werkzeug.wrappers import Response
    >>> from graywsgi import current
    >>> def view(environ, start_response):
    ...     return Response(current.route)(environ, start_response)
    >>> application = wrap(view, settings={"PERCENT": 15})
    >>> Client(application).get("/", headers={"X-Gray-ID": "user-11"}, buffered=True).text
    'canary'

    :param application: the project's WSGI application
        (``get_wsgi_application()``).
    :param settings: the graywsgi settings; by default the ``GRAYWSGI``
        dict of ``django.conf.settings`` (Django must be configured).
    :return: a :class:`~graywsgi.contrib.chain.GrayChain`: a WSGI application with
        ``.status()``, ``.state`` (kill switch) and ``.after_fork()``.
    :raises SettingsError: naming the entry, for a bad setting.
    """
    if settings is None:
        from django.conf import settings as django_settings  # type: ignore[import-untyped]

        settings = getattr(django_settings, SETTING, {})
        if not isinstance(settings, t.Mapping):
            raise SettingsError(SETTING, f"must be a dict of graywsgi settings, got {type(settings).__name__}")
    return build_chain(application, settings, key=_setting_key)


def routes_only(*routes: str) -> t.Callable[[t.Callable[P, R]], t.Callable[P, R]]:
    """Serve a view only to requests routed to one of ``routes``.

    Any other request -- and one graywsgi did not route -- gets
    ``django.http.Http404``, as for a URL that does not exist::

        @routes_only("canary")
        def new_checkout(request): ...

    :param routes: route (cluster) names.
    """
    if not routes or not all(isinstance(route, str) and route for route in routes):
        raise ConfigurationError(f"routes_only needs one or more route names, got {routes!r}")
    allowed = frozenset(routes)

    def decorate(view: t.Callable[P, R]) -> t.Callable[P, R]:
        from django.http import Http404  # type: ignore[import-untyped]

        @functools.wraps(view)
        def routed_view(*args: P.args, **kwargs: P.kwargs) -> R:
            context = get_current()
            if context is None or context.route not in allowed:
                raise Http404("No such page.")
            return view(*args, **kwargs)

        return routed_view

    return decorate


def context_processor(request: object) -> dict[str, GrayContext | None]:
    """A Django template context processor: the gray context as ``gray``.

    ``None`` for a request graywsgi did not handle.
    """
    return {"gray": get_current()}
