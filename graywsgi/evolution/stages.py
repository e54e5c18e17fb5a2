"""
Protocol evolution
==================

Moves clients from an old API version to a new one in three stages, each
switched by configuration or at a dated instant:

``compat``
    Old requests are served as before, and their responses say that the
    old version is deprecated and when it ends: ``Deprecation: @<unix
    seconds>`` (RFC 9745), ``Sunset: <HTTP-date>`` (RFC 8594) and
    ``Link: <new path>; rel="successor-version"``.
``transition``
    Old requests are redirected to the new path, query string kept: ``308
    Permanent Redirect`` by default, so methods and bodies survive. ``301``
    only when configured (clients may turn a POST into a GET; a warning is
    logged at construction). Clients matched by an
    :class:`~graywsgi.evolution.api.Exemption` (for
    example an SDK older than a version range) are still served, with the
    compat headers. A :class:`~graywsgi.evolution.mirror.Mirror` may send a share of
    the old requests that are still served to a shadow (the new version) and
    compare the answers.
``switch``
    Old requests answer ``410 Gone`` with an RFC 9457 problem+json body
    naming the successor (``"successor"`` member and a ``Link`` header).

.. code-block:: python

    from graywsgi.evolution.stages import Api, ProtocolEvolution

    app.wsgi_app = ProtocolEvolution(app.wsgi_app, apis=[
        Api("orders", old="/v1/orders", new="/v2/orders",
            deprecated_at="2026-01-01T00:00:00Z",
            transition_at="2026-03-01T00:00:00Z",
            switch_at="2026-06-01T00:00:00Z"),
    ])

The APIs are configured with :class:`~graywsgi.evolution.api.Api` (with
its :class:`~graywsgi.evolution.api.Stage` and
:class:`~graywsgi.evolution.api.Exemption`), defined with their path mapping
and dated stages in :mod:`graywsgi.evolution.api` and importable from here
too; this module is the middleware that acts on them.

Mapping
-------

The first API that matches wins (:mod:`graywsgi.evolution.api` says how
``old`` and ``new`` paths match).

Responses to old paths carry ``X-Protocol-Version: <old_version>``, responses
to new paths ``X-Protocol-Version: <new_version>``. A request may state the
version it speaks in the same header.

What the request carries
------------------------

The context (:class:`~graywsgi.core.context.GrayContext`) is left as it is; the
stage is handed downstream in namespaced environ keys:

- ``environ["graywsgi.protocol_stage"]``: ``"compat"``, ``"transition"`` or
  ``"switch"`` for a request to an old path;
- ``environ["graywsgi.protocol_api"]``: the API's name (old and new paths);
- ``environ["graywsgi.protocol_version"]``: the version the request stated
  in ``X-Protocol-Version``, or else the version its path implies.

With :class:`~graywsgi.metrics.layer.Metrics` around it, every old request counts
``<prefix>.evolution`` with tags ``api``, ``stage`` and ``action``
(``served``, ``exempt``, ``redirected``, ``gone``). :meth:`ProtocolEvolution.status`
is the admin view.

Failing open
------------

An unexpected error in the decision is logged on ``graywsgi.evolution`` and
the request is served by the application unchanged.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
import typing as t
import urllib.parse

from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.core.context import replace as replace_context
from graywsgi.errors import ConfigurationError, problem_response
from graywsgi.evolution.api import Api, Exemption, Stage
from graywsgi.layers.events import note

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["API_KEY", "STAGE_KEY", "VERSION_KEY", "Api", "Exemption", "ProtocolEvolution", "Stage"]

logger = logging.getLogger("graywsgi.evolution")

STAGE_KEY = "graywsgi.protocol_stage"
API_KEY = "graywsgi.protocol_api"
VERSION_KEY = "graywsgi.protocol_version"

_PATH_SAFE = "/:@!$&'()*+,;=~"


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).isoformat().replace("+00:00", "Z")


def _url_path(environ: WSGIEnvironment, path: str) -> str:
    """``SCRIPT_NAME + path`` percent-encoded for a header (WSGI strings are latin-1)."""
    whole = environ.get("SCRIPT_NAME", "") + path
    return urllib.parse.quote(whole.encode("latin-1", "replace"), safe=_PATH_SAFE)


class ProtocolEvolution:
    """Deprecate, redirect, then retire old API versions.

    >>> from werkzeug.test import Client
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"v1 answer"]
    >>> evolution = ProtocolEvolution(app, apis=[
    ...     Api("orders", old="/v1/orders", new="/v2/orders", stage="transition")])
    >>> response = Client(evolution).post("/v1/orders/7?full=1", data=b"x")
    >>> response.status_code, response.headers["Location"]
    (308, '/v2/orders/7?full=1')

    :param app: the WSGI application to wrap.
    :param apis: the :class:`~graywsgi.evolution.api.Api` mappings, tried in order.
    :param clock: unix time now (``time.time``), injectable for tests.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        apis: t.Iterable[Api],
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.apis = tuple(apis)
        if not self.apis:
            raise ConfigurationError("ProtocolEvolution needs at least one Api")
        names = [api.name for api in self.apis]
        for api in self.apis:
            if not isinstance(api, Api):
                raise ConfigurationError(f"apis must be graywsgi.evolution.Api objects, got {api!r}")
        if len(set(names)) != len(names):
            raise ConfigurationError(f"API names must be unique, got {names}")
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, got {clock!r}")
        self.clock = clock

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        try:
            handler = self._decide(environ)
        except Exception:
            logger.exception("graywsgi evolution failed; request served unchanged")
            handler = self.app
        return handler(environ, start_response)

    def _decide(self, environ: WSGIEnvironment) -> WSGIApplication:
        """The WSGI callable that answers this request (only bookkeeping here)."""
        path = environ.get("PATH_INFO", "") or "/"
        stated = environ.get("HTTP_X_PROTOCOL_VERSION")
        for api in self.apis:
            successor = api.successor(path)
            if successor is not None:
                return self._old(api, successor, environ, stated)
            if api.new.match(path) is not None:
                environ[API_KEY] = api.name
                environ[VERSION_KEY] = stated or api.new_version
                return _WithHeaders(self.app, [("X-Protocol-Version", api.new_version)])
        return self.app

    def _old(self, api: Api, successor: str, environ: WSGIEnvironment, stated: str | None) -> WSGIApplication:
        stage = api.stage_at(self.clock())
        environ[STAGE_KEY] = stage.value
        context = environ.get(ENVIRON_KEY)
        if isinstance(context, GrayContext):
            replace_context(environ, context._replace(protocol_stage=stage.value))
        environ[API_KEY] = api.name
        environ[VERSION_KEY] = stated or api.old_version
        link_target = _url_path(environ, successor)
        link = ("Link", f'<{link_target}>; rel="successor-version"')
        if stage is Stage.SWITCH:
            note(environ, "evolution", api=api.name, stage=stage.value, action="gone")
            detail = (
                f"{api.old.text} (protocol version {api.old_version}) has been retired; "
                f"use {link_target} (protocol version {api.new_version})."
            )
            extra = {"api": api.name, "successor": link_target, "successor_version": api.new_version}
            headers = [link, ("X-Protocol-Version", api.old_version)]

            def gone(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
                return problem_response(start_response, 410, detail, headers=headers, extra=extra)

            return gone
        action = "served"
        if stage is Stage.TRANSITION:
            if any(exemption.applies(environ) for exemption in api.exemptions):
                action = "exempt"
            else:
                note(environ, "evolution", api=api.name, stage=stage.value, action="redirected")
                query = environ.get("QUERY_STRING", "")
                location = link_target + (f"?{query}" if query else "")
                body = f"Moved to {location}\n".encode("latin-1", "replace")
                status = "308 Permanent Redirect" if api.redirect_status == 308 else "301 Moved Permanently"
                redirect_headers = [
                    ("Location", location),
                    link,
                    *_deprecation(api),
                    ("X-Protocol-Version", api.old_version),
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ]

                def redirect(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
                    start_response(status, redirect_headers)
                    return [body]

                return redirect
        note(environ, "evolution", api=api.name, stage=stage.value, action=action)
        served = _WithHeaders(self.app, [*_deprecation(api), link, ("X-Protocol-Version", api.old_version)])
        mirror = api.mirror
        if mirror is not None and stage in api.mirror_stages and mirror.wants(environ):

            def mirrored(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
                return mirror.serve(served, environ, start_response, successor)

            return mirrored
        return served

    def status(self) -> list[dict[str, t.Any]]:
        """The admin view: per API its mapping, stage, dates and mirror report."""
        now = self.clock()
        rows = []
        for api in self.apis:
            change = api.next_change(now)
            rows.append(
                {
                    "api": api.name,
                    "old": api.old.text,
                    "new": api.new.text,
                    "old_version": api.old_version,
                    "new_version": api.new_version,
                    "stage": api.stage_at(now).value,
                    "configured_stage": api.stage.value,
                    "transition_at": _iso(api.transition_at),
                    "switch_at": _iso(api.switch_at),
                    "deprecated_at": _iso(api.deprecated_at),
                    "sunset": api.sunset_header,
                    "next_stage": change[0].value if change else None,
                    "next_stage_at": _iso(change[1]) if change else None,
                    "redirect_status": api.redirect_status,
                    "exemptions": [f"{e.header} {e.range.raw}" for e in api.exemptions],
                    "mirror": api.mirror.report() if api.mirror is not None else None,
                }
            )
        return rows


def _deprecation(api: Api) -> list[tuple[str, str]]:
    headers = [("Deprecation", api.deprecation_header)]
    if api.sunset_header is not None:
        headers.append(("Sunset", api.sunset_header))
    return headers


#: Headers that may appear more than once: ours is added next to the app's.
_REPEATABLE = frozenset({"link"})


class _WithHeaders:
    """``app`` with headers added to its response (those it sets itself win;
    a ``Link`` is added beside the app's own)."""

    def __init__(self, app: WSGIApplication, extra: list[tuple[str, str]]) -> None:
        self.app = app
        self.extra = extra

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        def add(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable[[bytes], object]:
            present = {name.lower() for name, _ in headers} - _REPEATABLE
            headers = [*headers, *(pair for pair in self.extra if pair[0].lower() not in present)]
            return start_response(status, headers, exc_info)

        return self.app(environ, add)
