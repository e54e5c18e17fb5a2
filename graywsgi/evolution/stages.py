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
    logged at construction). Clients matched by an :class:`Exemption` (for
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

Mapping
-------

``old`` and ``new`` are path prefixes (``/v1/orders`` covers ``/v1/orders``
and ``/v1/orders/7/lines``; the rest of the path is appended to ``new``) or
templates with ``{name}`` segments (``/v1/users/{id}/profile`` ->
``/v2/accounts/{id}``; a template matches the whole path, and both sides
must name the same variables). The first API that matches wins.

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

Dated stages
------------

``transition_at`` and ``switch_at`` are instants (an aware
:class:`~datetime.datetime`, ISO 8601 text with a zone such as
``2026-03-01T00:00:00Z``, or unix seconds). The stage in force is the later
of the configured ``stage`` and the stages whose instant has passed, by the
middleware's ``clock`` (``time.time`` unless injected): stages only move
forward. ``Sunset`` is ``sunset_at``, or ``switch_at`` when not given (no
header when neither is set). ``Deprecation`` is ``deprecated_at``, or the
time the middleware was built.

Failing open
------------

An unexpected error in the decision is logged on ``graywsgi.evolution.stages`` and
the request is served by the application unchanged.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import re
import time
import typing as t
import urllib.parse
from email.utils import formatdate

from graywsgi.core.context import ENVIRON_KEY, GrayContext
from graywsgi.core.context import replace as replace_context
from graywsgi.errors import ConfigurationError, problem_response
from graywsgi.metrics.layer import note
from graywsgi.evolution.mirror import Mirror
from graywsgi.core.version import VersionRange

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["API_KEY", "STAGE_KEY", "VERSION_KEY", "Api", "Exemption", "ProtocolEvolution", "Stage"]

logger = logging.getLogger("graywsgi.evolution")

STAGE_KEY = "graywsgi.protocol_stage"
API_KEY = "graywsgi.protocol_api"
VERSION_KEY = "graywsgi.protocol_version"

# Theory of operation: the stages are ordered and only move forward. The
# stage in force is the furthest of the configured stage and every stage
# whose instant has passed; _NEXT is the transition table dated instants
# follow, and the constructor refuses instants that would move backwards.


class Stage(str, enum.Enum):
    """The stage of an old API version."""

    COMPAT = "compat"
    TRANSITION = "transition"
    SWITCH = "switch"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Stage.COMPAT: 0, Stage.TRANSITION: 1, Stage.SWITCH: 2}
_NEXT = {Stage.COMPAT: (Stage.TRANSITION, Stage.SWITCH), Stage.TRANSITION: (Stage.SWITCH,), Stage.SWITCH: ()}

_Instant = _dt.datetime | str | int | float
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATH_SAFE = "/:@!$&'()*+,;=~"


def _instant(name: str, value: _Instant | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a datetime, ISO 8601 text or unix seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}: not an ISO 8601 instant: {value!r}") from None
    if not isinstance(value, _dt.datetime):
        raise ConfigurationError(f"{name} must be a datetime, ISO 8601 text or unix seconds, got {value!r}")
    if value.tzinfo is None:
        raise ConfigurationError(f"{name} must carry a time zone (e.g. ...Z), got {value.isoformat()}")
    return value.timestamp()


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).isoformat().replace("+00:00", "Z")


class _PathMap:
    """One side of a mapping: a prefix or a ``{name}`` template."""

    def __init__(self, what: str, text: str) -> None:
        if not isinstance(text, str) or not text.startswith("/"):
            raise ConfigurationError(f"{what} must be a path starting with '/', got {text!r}")
        self.text = text
        self.variables = tuple(_VARIABLE.findall(text))
        if len(set(self.variables)) != len(self.variables):
            raise ConfigurationError(f"{what} {text!r} names a variable twice")
        if self.variables:
            pattern = ""
            position = 0
            for match in _VARIABLE.finditer(text):
                pattern += re.escape(text[position:match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
                position = match.end()
            self.regex: re.Pattern[str] | None = re.compile(pattern + re.escape(text[position:]))
            self.prefix = ""
        else:
            if "{" in text or "}" in text:
                raise ConfigurationError(f"{what} {text!r}: braces must hold a variable name")
            self.regex = None
            self.prefix = text.rstrip("/") or "/"

    def match(self, path: str) -> dict[str, str] | None:
        """The variables (or ``{"": rest}`` for a prefix), or ``None``."""
        if self.regex is not None:
            found = self.regex.fullmatch(path)
            return found.groupdict() if found is not None else None
        if self.prefix == "/":
            return {"": path}
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return {"": path[len(self.prefix):]}
        return None

    def build(self, values: dict[str, str]) -> str:
        if self.regex is None:
            return (self.prefix.rstrip("/") + values.get("", "")) or "/"
        return _VARIABLE.sub(lambda m: values[m.group(1)], self.text)


class Exemption:
    """Clients that keep being served in transition.

    >>> old_sdk = Exemption("X-SDK-Version", "<2.0.0")
    >>> old_sdk.applies({"HTTP_X_SDK_VERSION": "1.9.3"}), old_sdk.applies({"HTTP_X_SDK_VERSION": "2.1.0"})
    (True, False)

    :param header: the request header holding the client's version.
    :param versions: a node-semver range (:class:`~graywsgi.core.version.VersionRange`);
        a client whose version is in it is exempt. An absent or invalid
        version is not.
    """

    def __init__(self, header: str, versions: str) -> None:
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise ConfigurationError(f"exemption header must be a header name, got {header!r}")
        try:
            self.range = VersionRange(versions)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"exemption for {header}: {exc}") from None
        self.header = header
        self.environ_key = "HTTP_" + header.upper().replace("-", "_")

    def __repr__(self) -> str:
        return f"Exemption({self.header!r}, {self.range.raw!r})"

    def applies(self, environ: t.Mapping[str, t.Any]) -> bool:
        value = environ.get(self.environ_key)
        if not isinstance(value, str) or not value.strip() or len(value) > 256:
            return False
        try:
            return self.range.contains(value.strip())
        except ValueError:
            return False


class Api:
    """One API moving from an old version to a new one.

    >>> api = Api("users", old="/v1/users/{id}", new="/v2/accounts/{id}", stage="transition")
    >>> api.successor("/v1/users/42")
    '/v2/accounts/42'
    >>> api.stage_at(0.0).value
    'transition'

    :param name: the API's name in metrics, logs and the admin status.
    :param old: the old path prefix or template.
    :param new: the new path prefix or template (same variables as ``old``).
    :param old_version: the old protocol version (``X-Protocol-Version``).
    :param new_version: the new protocol version.
    :param stage: the configured stage (a floor: dates move it further).
    :param transition_at: when transition starts (see "Dated stages").
    :param switch_at: when switch starts.
    :param deprecated_at: the ``Deprecation`` date; the build time if omitted.
    :param sunset_at: the ``Sunset`` date; ``switch_at`` if omitted.
    :param redirect_status: 308 (default) or 301.
    :param exemptions: clients served in transition.
    :param mirror: mirroring of the old requests still served.
    :param mirror_stages: the stages in which the mirror acts
        (default: transition only).
    """

    def __init__(
        self,
        name: str,
        *,
        old: str,
        new: str,
        old_version: str = "1",
        new_version: str = "2",
        stage: Stage | str = Stage.COMPAT,
        transition_at: _Instant | None = None,
        switch_at: _Instant | None = None,
        deprecated_at: _Instant | None = None,
        sunset_at: _Instant | None = None,
        redirect_status: int = 308,
        exemptions: t.Iterable[Exemption] = (),
        mirror: Mirror | None = None,
        mirror_stages: t.Iterable[Stage | str] = (Stage.TRANSITION,),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"API name must be a non-empty str, got {name!r}")
        self.name = name
        self.old = _PathMap(f"API {name}: old", old)
        self.new = _PathMap(f"API {name}: new", new)
        if sorted(self.old.variables) != sorted(self.new.variables) or (self.old.regex is None) != (
            self.new.regex is None
        ):
            raise ConfigurationError(
                f"API {name}: old {old!r} and new {new!r} must both be prefixes, or templates "
                "naming the same variables"
            )
        for label, version in (("old_version", old_version), ("new_version", new_version)):
            if not isinstance(version, str) or not re.fullmatch(r"[\x21-\x7e]{1,64}", version):
                raise ConfigurationError(f"API {name}: {label} must be a short token, got {version!r}")
        self.old_version = old_version
        self.new_version = new_version
        self.stage = _stage(f"API {name}: stage", stage)
        self.transition_at = _instant(f"API {name}: transition_at", transition_at)
        self.switch_at = _instant(f"API {name}: switch_at", switch_at)
        if self.transition_at is not None and self.switch_at is not None and self.switch_at <= self.transition_at:
            raise ConfigurationError(f"API {name}: switch_at must come after transition_at")
        self.deprecated_at = _instant(f"API {name}: deprecated_at", deprecated_at)
        if self.deprecated_at is None:
            self.deprecated_at = float(int(time.time()))
        self.sunset_at = _instant(f"API {name}: sunset_at", sunset_at)
        if self.sunset_at is None:
            self.sunset_at = self.switch_at
        if redirect_status not in (301, 308) or isinstance(redirect_status, bool):
            raise ConfigurationError(f"API {name}: redirect_status must be 308 or 301, got {redirect_status!r}")
        if redirect_status == 301:
            logger.warning(
                "graywsgi evolution: API %s redirects with 301; clients may change POST to GET "
                "and lose the body (308 keeps them)", name,
            )
        self.redirect_status = redirect_status
        self.exemptions = tuple(exemptions)
        for exemption in self.exemptions:
            if not isinstance(exemption, Exemption):
                raise ConfigurationError(f"API {name}: exemptions must be Exemption objects, got {exemption!r}")
        if mirror is not None and not isinstance(mirror, Mirror):
            raise ConfigurationError(f"API {name}: mirror must be a graywsgi.evolution.mirror.Mirror, got {mirror!r}")
        self.mirror = mirror
        self.mirror_stages = frozenset(_stage(f"API {name}: mirror_stages", s) for s in mirror_stages)
        if Stage.SWITCH in self.mirror_stages:
            raise ConfigurationError(f"API {name}: nothing is served in switch, so nothing can be mirrored")
        # Header values that do not change per request.
        self.deprecation_header = f"@{int(self.deprecated_at)}"
        self.sunset_header = formatdate(self.sunset_at, usegmt=True) if self.sunset_at is not None else None

    def __repr__(self) -> str:
        return f"Api({self.name!r}, old={self.old.text!r}, new={self.new.text!r})"

    def stage_at(self, now: float) -> Stage:
        """The stage in force at unix time ``now``."""
        stage = self.stage
        for later in _NEXT[stage]:
            at = self.switch_at if later is Stage.SWITCH else self.transition_at
            if at is not None and now >= at and later.rank > stage.rank:
                stage = later
        return stage

    def next_change(self, now: float) -> tuple[Stage, float] | None:
        """The next dated stage after ``now`` and its instant, if any."""
        current = self.stage_at(now)
        for later in _NEXT[current]:
            at = self.switch_at if later is Stage.SWITCH else self.transition_at
            if at is not None and at > now:
                return later, at
        return None

    def successor(self, path: str) -> str | None:
        """The new path for an old ``path``, or ``None`` if it is not old."""
        values = self.old.match(path)
        return self.new.build(values) if values is not None else None


def _stage(what: str, value: Stage | str) -> Stage:
    try:
        return Stage(value)
    except ValueError:
        raise ConfigurationError(f"{what} must be one of {[s.value for s in Stage]}, got {value!r}") from None


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
    :param apis: the :class:`Api` mappings, tried in order.
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
                raise ConfigurationError(f"apis must be graywsgi.evolution.stages.Api objects, got {api!r}")
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
