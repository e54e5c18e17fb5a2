"""
Admin app
=========

A small WSGI application for the people running a gray release: where the
rollout stands, as JSON for scripts and as one HTML page for a person, and
the three buttons that matter -- roll back, resume, advance. Mount it
beside the service, behind a bearer token:

.. code-block:: python

    import os
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from graywsgi import Router
    from graywsgi.rollout.admin import AdminApp

    router = Router(app.wsgi_app, "rules.yaml", guard=guard)
    app.wsgi_app = DispatcherMiddleware(
        router, {"/_gray": AdminApp(router, token=os.environ.get("GRAYWSGI_ADMIN_TOKEN"))}
    )

Routes, relative to where it is mounted (its ``SCRIPT_NAME``):

====================  ==========================================================
``GET /``             the status page (HTML, no external assets)
``GET /status``       the status document (JSON, see :meth:`AdminApp.status`)
``POST /rollback``    set the kill switch: every canary share becomes 0
``POST /resume``      clear the kill switch: configured shares apply again
``POST /advance``     move the rollout plan to its next step, if its gate holds
====================  ==========================================================

Each action answers JSON and writes **one audit record** on the
``graywsgi.audit`` logger (level WARNING, so a default logging set-up keeps
it): the action, the outcome (``ok``, ``refused: ...``, ``error: ...``,
``denied: ...``), the actor -- the ``X-Actor`` request header, or
``unknown`` -- and the remote address. The record's ``extra`` fields are
``graywsgi_action``, ``graywsgi_outcome``, ``graywsgi_actor`` and
``graywsgi_remote_addr``. The token is shared, so the actor is what the
caller *says*; put per-person authentication in front of the app if the
audit trail must prove who it was.

Authentication
--------------

- **No token, no app.** With ``token=None`` (or empty) every request is
  answered 404 problem+json and a warning is logged once, when the app is
  built: a forgotten environment variable disables the app instead of
  opening it.
- **Bearer token.** ``Authorization: Bearer <token>``, compared in constant
  time (:func:`hmac.compare_digest`). Missing or wrong: 401 problem+json
  with ``WWW-Authenticate: Bearer``. This is the way for scripts, for every
  route.
- **Browser sign-in.** A browser cannot send that header when a person
  types a URL, so ``GET /?token=<token>`` -- only that route -- checks the
  token, sets a cookie and redirects (303) to the same page without the
  token in the URL. The cookie is ``HttpOnly``, ``SameSite=Strict``,
  ``Secure`` when the request came over HTTPS, scoped to the app's path and
  valid for 12 hours (:data:`SESSION_SECONDS`). It does not hold the token:
  it holds its expiry and an HMAC of it keyed by the token, so changing the
  token signs every browser out, and nothing is stored on the server (every
  gunicorn worker accepts it). The cookie authenticates GET requests;
  an action sent with the cookie must also carry the page's CSRF token
  (form field ``csrf`` or header ``X-CSRF-Token``: an HMAC of the cookie),
  or it is refused with 403. Actions sent with the ``Authorization`` header
  need no CSRF token: browsers never add that header on their own.

  *The trade-off:* for the one sign-in request the token is in a URL, and
  URLs are kept where headers are not -- the browser's history, the access
  log of every server and proxy on the way (written before the app sees the
  request). The app redirects at once, sends ``Referrer-Policy:
  no-referrer`` and ``Cache-Control: no-store``, but it cannot reach those
  logs. Use HTTPS, keep the access logs as private as the token, or rotate
  the token after signing in where they are not. A proxy that *adds* the
  ``Authorization`` header for the browser defeats the CSRF check: don't.

Every answer carries ``Cache-Control: no-store``, ``X-Content-Type-Options:
nosniff``, ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``;
the page also a Content-Security-Policy that allows only its own inline
script and style (by hash) and requests to the app itself. Every value the
page shows -- rule, route and step names included -- is HTML-escaped.

Unknown paths answer 404 and known paths with another method 405 with
``Allow``, both problem+json (after authentication: a caller without the
token learns nothing about the routes).

The page
--------

The kill switch (a red banner while set), the rollout plan's steps with the
current one marked, each route's breaker, window (requests, errors, error
and slow-call rates, mean latency where the guard measures it) and a small
inline-SVG chart of its error rate, and each rule's shares: configured, and
in force (after the kill switch and breakers). The chart is drawn from a
short history the app keeps in memory, one sample per route per status
render (at most one a second, the last :data:`HISTORY_SIZE` kept); each
worker keeps its own. The page reloads itself every 10 seconds.

Shares are computed from the rule set: each split weight times the rule's
factors, the plan's weight for the cluster it drives, the rest to the
default cluster. Traffic that colours, version routes or a trusted
``X-Canary-Weight`` send elsewhere is not in them.

The rollout plan
----------------

``rollout=`` is anything with ``status()`` and ``advance(actor)`` (the
:class:`RolloutControl` protocol); without it the app uses the plan of the
Router's rule set (:mod:`graywsgi.rules.plan`), if there is one. ``advance``
moves the plan in this process, with this worker's windows for the gate; a
gate that does not hold is a refusal (409, the reason in ``detail``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import math
import re
import threading
import time
import typing as t
from collections import deque
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.http import dump_cookie, parse_cookie
from werkzeug.wrappers import Request, Response

from graywsgi.errors import ConfigurationError, GrayError, problem_response
from graywsgi.layers.router import Router
from graywsgi.state.rollout_state import RolloutState, StateStore

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from graywsgi.rules.plan import Rollout

__all__ = ["COOKIE_NAME", "HISTORY_SIZE", "SESSION_SECONDS", "AdminApp", "RolloutControl", "render_page"]

logger = logging.getLogger("graywsgi.admin")

#: The browser session cookie (scoped to the app's path).
COOKIE_NAME = "graywsgi_admin"
#: How long a browser stays signed in after ``GET /?token=``.
SESSION_SECONDS = 12 * 3600
#: Error-rate samples kept per route for the page's charts.
HISTORY_SIZE = 60

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_FORM_BYTES = 16 * 1024
_MAX_ACTOR = 100
_ACTIONS = ("rollback", "resume", "advance")
_PAGE_METHODS = ("GET", "HEAD")
_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_REALM = 'Bearer realm="graywsgi admin"'


@t.runtime_checkable
class RolloutControl(t.Protocol):
    """What the admin app needs of a rollout plan engine.

    ``status()`` is shown as it is (JSON-serialisable); the page understands
    ``steps`` (a list of step names), ``step`` (the current index),
    ``step_name``, ``status`` and ``weight`` and lists the other members.
    ``advance(actor)`` moves to the next step and returns what to report, or
    raises :class:`~graywsgi.errors.GrayError` whose message explains the
    refusal (``"gate failed: canary error rate 4.1 % vs stable 0.3 %,
    margin 1 %"``).
    """

    def status(self) -> dict[str, t.Any]: ...

    def advance(self, actor: str) -> dict[str, t.Any]: ...


class _PlanControl:
    """:class:`RolloutControl` over a :class:`graywsgi.rules.plan.Rollout`."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout

    def status(self) -> dict[str, t.Any]:
        return self.rollout.status()

    def advance(self, actor: str) -> dict[str, t.Any]:
        self.rollout.advance(actor)
        return self.rollout.status()


class _History:
    """Per-route error-rate samples, bounded in length and in routes."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._series: dict[str, deque[tuple[float, float | None]]] = {}
        self._lock = threading.Lock()

    def sample(self, now: float, rates: t.Mapping[str, float | None]) -> dict[str, list[tuple[float, float | None]]]:
        """Add one sample per route (replacing one less than a second old);
        forget routes no longer in ``rates``; return every series."""
        with self._lock:
            for route in [r for r in self._series if r not in rates]:
                del self._series[route]
            for route, rate in rates.items():
                series = self._series.get(route)
                if series is None:
                    series = self._series[route] = deque(maxlen=self._size)
                if series and 0 <= now - series[-1][0] < 1.0:
                    series[-1] = (now, rate)
                else:
                    series.append((now, rate))
            return {route: list(series) for route, series in self._series.items()}


class AdminApp:
    """The admin WSGI app: status as JSON and HTML, rollback, resume, advance.

    >>> from werkzeug.test import Client
    >>> from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
    >>> from graywsgi.layers.guard import Guard
    >>> rules = RuleSet(clusters={"stable": Cluster(), "canary": Cluster()},
    ...                 rules=(Rule(name="all", split=(Backend("canary", 20),)),))
    >>> router = Router(lambda environ, start_response: [], rules, guard=Guard())
    >>> client = Client(AdminApp(router, token="s3cret-token-0123456789"))
    >>> client.get("/status").status_code
    401
    >>> auth = {"Authorization": "Bearer s3cret-token-0123456789"}
    >>> client.get("/status", headers=auth).json["rules"][0]["shares"]
    {'canary': 20.0, 'stable': 80.0}
    >>> client.post("/rollback", headers=auth).json["kill_switch"]["killed"]
    True

    :param router: the :class:`~graywsgi.layers.router.Router` to show and control.
    :param token: the bearer token; ``None`` or empty disables the app. Use
        something like ``secrets.token_urlsafe(32)``; it must be a single
        RFC 6750 ``b64token`` (letters, digits, ``-._~+/``, trailing ``=``).
    :param state: the rollout state store the kill switch lives in; default:
        the router's guard's. Without either, rollback and resume answer 409.
    :param evolution: a :class:`graywsgi.evolution.stages.ProtocolEvolution` whose
        stages the status JSON reports (``protocol_evolution``).
    :param rollout: the rollout plan engine (:class:`RolloutControl`);
        default: the plan of the router's rule set, if any.
    :param audit_logger: the name of the logger audit records go to.
    :param history: error-rate samples kept per route for the charts.
    :param clock: wall clock (``time.time``), injectable for tests.
    :raises ConfigurationError: on options that cannot work.
    """

    def __init__(
        self,
        router: Router,
        *,
        token: str | None,
        state: StateStore | None = None,
        rollout: RolloutControl | None = None,
        audit_logger: str = "graywsgi.audit",
        history: int = HISTORY_SIZE,
        clock: t.Callable[[], float] = time.time,
        evolution: t.Any = None,
    ) -> None:
        if evolution is not None and not callable(getattr(evolution, "status", None)):
            raise ConfigurationError(f"evolution must have status(), got {evolution!r}")
        self.evolution = evolution
        if not isinstance(router, Router):
            raise ConfigurationError(f"router must be a graywsgi.Router, got {router!r}")
        if token is not None and not isinstance(token, str):
            raise ConfigurationError(f"token must be a string or None, got {type(token).__name__}")
        if token and not _B64TOKEN.fullmatch(token):
            raise ConfigurationError(
                "token must be one RFC 6750 b64token (letters, digits, '-._~+/', then '='s);"
                " try secrets.token_urlsafe(32)"
            )
        if state is not None and not isinstance(state, StateStore):
            raise ConfigurationError(f"state must be a graywsgi.state.rollout_state.StateStore, got {state!r}")
        if rollout is not None and not isinstance(rollout, RolloutControl):
            raise ConfigurationError(f"rollout must have status() and advance(actor), got {rollout!r}")
        if not isinstance(audit_logger, str) or not audit_logger:
            raise ConfigurationError(f"audit_logger must be a logger name, got {audit_logger!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigurationError(f"history must be a positive number of samples, got {history!r}")
        self.router = router
        self.state = state if state is not None else (router.guard.state if router.guard is not None else None)
        self.rollout = rollout
        self.audit = logging.getLogger(audit_logger)
        self._clock = clock
        self._history = _History(history)
        self._key = token.encode("ascii") if token else None
        self._token_digest = hashlib.sha256(self._key).digest() if self._key is not None else None
        if self._key is None:
            logger.warning(
                "graywsgi admin app is disabled: no token configured (every request is answered 404)"
            )
        elif len(token or "") < 16:
            logger.warning("graywsgi admin token is shorter than 16 characters; use secrets.token_urlsafe(32)")

    @property
    def enabled(self) -> bool:
        """Whether a token is configured."""
        return self._key is not None

    # -- WSGI ------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if self._key is None:
            return _problem(start_response, 404, "Not found.")
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path == "":
            query = environ.get("QUERY_STRING", "")
            location = _base(environ) + (f"?{query}" if query and _PLAIN_QUERY.fullmatch(query) else "")
            return _plain(start_response, "308 Permanent Redirect", [("Location", location)])
        request = Request(environ, shallow=True)
        if path == "/" and method in _PAGE_METHODS and "token" in request.args:
            return self._sign_in(environ, request, start_response)
        action = path[1:] if path[1:] in _ACTIONS else None
        how, problem = self._authenticate(environ)
        if how is None:
            if action is not None and method == "POST":
                self._audit(environ, action, f"denied: {problem}")
            challenge = f'{_REALM}, error="invalid_token"' if problem in ("invalid token", "bad session") else _REALM
            return _problem(start_response, 401, _AUTH_HELP[problem], headers=[("WWW-Authenticate", challenge)])
        allowed = ("POST",) if action is not None else _PAGE_METHODS if path in ("/", "/status") else None
        if allowed is None:
            return _problem(start_response, 404, f"No admin route {path!r}; see GET {_base(environ)}.")
        if method not in allowed:
            return _problem(
                start_response, 405, f"{path} takes {' or '.join(allowed)}.", headers=[("Allow", ", ".join(allowed))]
            )
        if action is not None:
            if how == "cookie":
                refusal = self._csrf_problem(environ)
                if refusal is not None:
                    status, detail = refusal
                    self._audit(environ, action, f"denied: {detail}")
                    return _problem(start_response, status, detail)
            return self._act(environ, start_response, action)
        if path == "/status":
            body = json.dumps(self.status(), indent=2, default=str).encode("utf-8")
            return Response(body, headers=list(_SECURITY_HEADERS), mimetype="application/json")(
                environ, start_response
            )
        document = self.status()
        csrf = self._csrf_token(_cookie(environ)) if how == "cookie" else ""
        page = render_page(document, csrf=csrf, can_act=self.state is not None)
        headers = [*_SECURITY_HEADERS, ("Content-Security-Policy", _CSP)]
        return Response(page, headers=headers, mimetype="text/html")(environ, start_response)

    # -- authentication --------------------------------------------------------

    def _authenticate(self, environ: WSGIEnvironment) -> tuple[str | None, str]:
        """``("bearer" | "cookie", "")``, or ``(None, what is wrong)``.

        A Bearer ``Authorization`` header decides alone; another scheme
        (say, a proxy's Basic authentication) leaves it to the cookie.
        """
        header = environ.get("HTTP_AUTHORIZATION")
        if header is not None:
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() == "bearer":
                if not credentials.strip():
                    return None, "not bearer"
                return ("bearer", "") if self._is_token(credentials.strip()) else (None, "invalid token")
        session = _cookie(environ)
        if session is None:
            return None, "missing" if header is None else "not bearer"
        return ("cookie", "") if self._session_ok(session) else (None, "bad session")

    def _is_token(self, candidate: str) -> bool:
        """Constant time, and the same time whatever the candidate's length."""
        return hmac.compare_digest(hashlib.sha256(_bytes(candidate)).digest(), t.cast(bytes, self._token_digest))

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(t.cast(bytes, self._key), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def _session_value(self, expires: int) -> str:
        return f"{expires}.{self._mac('session', str(expires))}"

    def _session_ok(self, value: str) -> bool:
        expires, dot, _ = value.partition(".")
        if not dot or not expires.isdigit() or len(expires) > 12:
            return False
        genuine = hmac.compare_digest(_bytes(value), self._session_value(int(expires)).encode("ascii"))
        return genuine and int(expires) > self._clock()

    def _csrf_token(self, session: str | None) -> str:
        return self._mac("csrf", session) if session else ""

    def _csrf_problem(self, environ: WSGIEnvironment) -> tuple[int, str] | None:
        """Why a cookie-authenticated action is refused, or ``None``."""
        supplied = environ.get("HTTP_X_CSRF_TOKEN")
        if supplied is None:
            request = Request(environ)
            request.max_content_length = _MAX_FORM_BYTES
            request.max_form_memory_size = _MAX_FORM_BYTES
            try:
                supplied = request.form.get("csrf")
            except HTTPException as exc:
                return exc.code or 400, "the form could not be read"
        if not supplied:
            return 403, "a request authenticated by the session cookie needs the page's CSRF token"
        if not hmac.compare_digest(_bytes(supplied), self._csrf_token(_cookie(environ)).encode("ascii")):
            return 403, "the CSRF token does not belong to this session; reload the page"
        return None

    def _sign_in(self, environ: WSGIEnvironment, request: Request, start_response: StartResponse) -> t.Iterable[bytes]:
        tokens = request.args.getlist("token")
        if len(tokens) != 1 or not self._is_token(tokens[0]):
            return _problem(start_response, 401, _AUTH_HELP["invalid token"], headers=[
                ("WWW-Authenticate", f'{_REALM}, error="invalid_token"')])
        expires = int(self._clock()) + SESSION_SECONDS
        base = _base(environ)
        cookie = dump_cookie(
            COOKIE_NAME,
            self._session_value(expires),
            max_age=SESSION_SECONDS,
            path=base,
            secure=environ.get("wsgi.url_scheme") == "https",
            httponly=True,
            samesite="Strict",
        )
        logger.info("graywsgi admin: browser signed in from %s", environ.get("REMOTE_ADDR", "?"))
        return _plain(start_response, "303 See Other", [("Location", base), ("Set-Cookie", cookie)])

    # -- actions ---------------------------------------------------------------

    def _act(self, environ: WSGIEnvironment, start_response: StartResponse, action: str) -> t.Iterable[bytes]:
        actor = _actor(environ)
        try:
            if action == "advance":
                control = self._control()
                if control is None:
                    raise _Refused(409, "no rollout plan: the rule set has none and no rollout= was given")
                result: dict[str, t.Any] = {"rollout": control.advance(actor)}
            else:
                store = self.state
                if store is None:
                    raise _Refused(409, "no state store: give AdminApp(state=...) or a Router with a guard")
                before = store.current().killed
                if action == "rollback":
                    after = store.rollback(f"rolled back by {actor} from the admin app")
                else:
                    after = store.resume(f"resumed by {actor} from the admin app")
                result = {"kill_switch": _kill_switch(after), "changed": before != after.killed}
        except _Refused as exc:
            self._audit(environ, action, f"refused: {exc.detail}")
            return _problem(start_response, exc.status, exc.detail, extra={"action": action, "outcome": "refused"})
        except GrayError as exc:
            detail = str(exc) or type(exc).__name__
            self._audit(environ, action, f"refused: {detail}")
            return _problem(start_response, 409, detail, extra={"action": action, "outcome": "refused"})
        except Exception as exc:
            logger.exception("graywsgi admin: %s failed", action)
            detail = f"{type(exc).__name__}: {exc}"
            self._audit(environ, action, f"error: {detail}")
            return _problem(start_response, 503, f"{action} failed: {detail}", extra={"action": action, "outcome": "error"})
        self._audit(environ, action, "ok")
        body = {"action": action, "outcome": "ok", "actor": actor, **result}
        return Response(
            json.dumps(body, sort_keys=True, default=str), headers=list(_SECURITY_HEADERS), mimetype="application/json"
        )(environ, start_response)

    def _audit(self, environ: WSGIEnvironment, action: str, outcome: str) -> None:
        actor = _actor(environ)
        remote = str(environ.get("REMOTE_ADDR") or "unknown")
        self.audit.warning(
            "graywsgi admin %s by %s from %s: %s",
            action,
            actor,
            remote,
            outcome,
            extra={
                "graywsgi_action": action,
                "graywsgi_outcome": outcome,
                "graywsgi_actor": actor,
                "graywsgi_remote_addr": remote,
            },
        )

    def _control(self) -> RolloutControl | None:
        if self.rollout is not None:
            return self.rollout
        rollout = self.router.rollout
        return _PlanControl(rollout) if rollout is not None else None

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, t.Any]:
        """The status document (what ``GET status`` answers); records one
        history sample per route.

        Members: ``generated_at`` (``time.time()``), ``rules_version``,
        ``default_cluster``, ``clusters``, ``no_match``; ``kill_switch``
        (``killed``, ``reason``, ``since``, ``revision``; ``killed`` is
        ``None`` with an ``error`` when the store cannot be read; the member
        is ``None`` without a store); ``rollout`` (the plan's status, or
        ``None``); ``trip_error_rate`` (the guard's threshold, or ``None``);
        ``routes``: cluster -> ``default``, ``breaker`` (state, held,
        opened_at, retry_after, probes; ``None`` for the default cluster and
        routes without traffic yet), ``shared`` (the breaker state in the
        store), ``window`` (requests, errors, slow, error_rate, slow_rate
        and, where measured, mean_latency_seconds; ``None`` without a
        guard), ``taking_traffic``, ``why_not`` and ``error_rate_history``
        (``[time, rate or None]`` pairs); ``rules``: per rule ``name``,
        ``mode``, ``factor``, ``shares`` (configured, percent per cluster)
        and ``in_force`` (after kill switch and breakers).
        """
        now = self._clock()
        compiled = self.router.store.current()
        ruleset = compiled.ruleset
        default = ruleset.default_cluster
        guard = self.router.guard
        guard_status = guard.status() if guard is not None else {}
        kill: dict[str, t.Any] | None = None
        shared_routes: t.Mapping[str, t.Any] = {}
        if self.state is not None:
            try:
                current = self.state.fetch()
            except Exception as exc:
                kill = {"killed": None, "reason": "", "since": None, "revision": None,
                        "error": f"the state store could not be read: {exc}"}
            else:
                kill = _kill_switch(current)
                shared_routes = current.routes
        killed = bool(kill and kill["killed"])
        rollout_status, plan_weight = self._rollout_status()

        routes: dict[str, dict[str, t.Any]] = {}
        breakers: t.Mapping[str, t.Mapping[str, t.Any]] = guard_status.get("breakers", {})
        for name in sorted(ruleset.clusters, key=lambda n: (n != default, n)):
            entry: dict[str, t.Any] = {"default": name == default, "breaker": None, "shared": None, "window": None}
            snapshot = breakers.get(name)
            if name == default:
                if guard is not None:
                    entry["window"] = _window(guard_status.get("baseline", {}))
            elif snapshot is not None:
                entry["breaker"] = {
                    key: snapshot.get(key) for key in ("state", "held", "opened_at", "retry_after", "probes")
                }
                entry["window"] = _window({**t.cast(dict[str, t.Any], snapshot.get("totals") or {}), **snapshot})
            elif guard is not None:
                entry["window"] = _window({})
            shared = shared_routes.get(name)
            if shared is not None:
                entry["shared"] = {"open": shared.open, "since": shared.since, "reason": shared.reason}
            why_not = ""
            if name != default:
                if killed:
                    why_not = "kill switch set"
                elif entry["breaker"] is not None and entry["breaker"]["state"] in ("open", "half_open"):
                    why_not = f"breaker {entry['breaker']['state'].replace('_', '-')}"
                elif entry["shared"] is not None and entry["shared"]["open"]:
                    why_not = "breaker open (shared)"
            entry["taking_traffic"] = not why_not
            entry["why_not"] = why_not
            routes[name] = entry

        rules = []
        for rule in ruleset.rules:
            factor = math.prod(rule.factors.values()) if rule.factors else 1.0
            shares: dict[str, float] = {}
            for backend in rule.split:
                weight = backend.weight
                if plan_weight is not None and plan_weight[0] == rule.name and plan_weight[1] == backend.cluster:
                    weight = plan_weight[2]
                shares[backend.cluster] = shares.get(backend.cluster, 0.0) + weight * factor
            shares[default] = shares.get(default, 0.0) + max(0.0, 100.0 - sum(shares.values()))
            in_force: dict[str, float] = {}
            for cluster, share in shares.items():
                target = cluster if routes.get(cluster, {}).get("taking_traffic", True) else default
                in_force[target] = in_force.get(target, 0.0) + share
                in_force.setdefault(cluster, 0.0)
            rules.append({
                "name": rule.name,
                "mode": rule.mode,
                "factor": round(factor, 6),
                "shares": {k: round(v, 4) for k, v in shares.items()},
                "in_force": {k: round(v, 4) for k, v in in_force.items()},
            })

        rates = {
            name: (entry["window"]["error_rate"] if entry["window"] and entry["window"]["requests"] else None)
            for name, entry in routes.items()
        }
        for name, series in self._history.sample(now, rates).items():
            routes[name]["error_rate_history"] = [[round(when, 3), rate] for when, rate in series]
        return {
            "generated_at": now,
            "rules_version": compiled.version_id,
            "default_cluster": default,
            "clusters": sorted(ruleset.clusters),
            "no_match": ruleset.no_match,
            "kill_switch": kill,
            "rollout": rollout_status,
            "protocol_evolution": self.evolution.status() if self.evolution is not None else None,
            "trip_error_rate": guard.policy.error_rate if guard is not None else None,
            "routes": routes,
            "rules": rules,
        }

    def _rollout_status(self) -> tuple[dict[str, t.Any] | None, tuple[str, str, float] | None]:
        """The plan's status, and the ``(rule, cluster, weight)`` the
        router's own plan imposes now (what the router applies)."""
        imposed = None
        plan: Rollout | None = None
        try:
            plan = self.router.rollout
            weight = plan.weight() if plan is not None else None
            if plan is not None and weight is not None:
                imposed = (plan.plan.rule, plan.plan.cluster, weight)
        except Exception:
            logger.exception("graywsgi admin: the rollout plan's weight could not be read")
        try:
            if self.rollout is not None:
                return self.rollout.status(), imposed
            return (plan.status() if plan is not None else None), imposed
        except Exception as exc:
            logger.exception("graywsgi admin: the rollout status could not be read")
            return {"error": f"{type(exc).__name__}: {exc}"}, imposed


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_AUTH_HELP = {
    "missing": "Authentication required: send 'Authorization: Bearer <token>', or sign this browser in"
    " once with GET ./?token=<token>.",
    "not bearer": "The Authorization header must be 'Bearer <token>'.",
    "invalid token": "The token is not valid.",
    "bad session": "The session cookie is invalid or has expired; sign in again with GET ./?token=<token>.",
}

_PLAIN_QUERY = re.compile(r"[\x21-\x7e]*")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _base(environ: WSGIEnvironment) -> str:
    """The app's root URL path, with a trailing slash."""
    script = environ.get("SCRIPT_NAME", "").encode("latin-1", "replace")
    return "/" + quote(script, safe="/:@!$&'()*+,;=-._~").strip("/") + "/" if script.strip(b"/") else "/"


def _cookie(environ: WSGIEnvironment) -> str | None:
    header = environ.get("HTTP_COOKIE")
    if not header:
        return None
    return parse_cookie(header).get(COOKIE_NAME) or None


def _actor(environ: WSGIEnvironment) -> str:
    raw = environ.get("HTTP_X_ACTOR", "")
    cleaned = "".join(ch for ch in str(raw) if ch.isprintable()).strip()[:_MAX_ACTOR]
    return cleaned or "unknown"


def _problem(
    start_response: StartResponse,
    status: int,
    detail: str,
    *,
    headers: t.Sequence[tuple[str, str]] = (),
    extra: t.Mapping[str, object] | None = None,
) -> list[bytes]:
    return problem_response(start_response, status, detail, headers=[*_SECURITY_HEADERS, *headers], extra=extra)


def _plain(start_response: StartResponse, status: str, headers: t.Sequence[tuple[str, str]]) -> list[bytes]:
    start_response(status, [*_SECURITY_HEADERS, ("Content-Length", "0"), *headers])
    return []


def _kill_switch(state: RolloutState) -> dict[str, t.Any]:
    return {"killed": state.killed, "reason": state.reason, "since": state.since, "revision": state.revision}


def _window(data: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    requests = int(data.get("requests") or 0)
    errors = int(data.get("errors") or 0)
    slow = int(data.get("slow") or 0)
    window: dict[str, t.Any] = {
        "requests": requests,
        "errors": errors,
        "slow": slow,
        "error_rate": errors / requests if requests else 0.0,
        "slow_rate": slow / requests if requests else 0.0,
    }
    for key, value in data.items():
        if "latency" in key:
            window[key] = value
    return window


# -- the page ------------------------------------------------------------------

_STYLE = """
:root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: #d0d7de; font-size: 13px; }
main { padding: 16px 24px; max-width: 1200px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px 16px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.banner { font-size: 20px; font-weight: 600; padding: 14px 16px; border-radius: 6px; margin-bottom: 16px; }
.banner.set { background: var(--bad); color: #fff; }
.banner.clear { background: #dafbe1; color: var(--ok); border: 1px solid #aceebb; }
.banner.unknown { background: #fff8c5; color: var(--warn); border: 1px solid #eac54f; }
.banner small { display: block; font-size: 13px; font-weight: 400; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #d8dee4; vertical-align: middle; }
thead th { font-size: 12px; text-transform: uppercase; color: var(--muted); }
td.num { font-variant-numeric: tabular-nums; }
.state { font-weight: 600; }
.state.closed, .state.taking { color: var(--ok); }
.state.open, .state.off { color: var(--bad); }
.state.half_open { color: var(--warn); }
ol.steps { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; padding: 0; margin: 8px 0; }
ol.steps li { padding: 4px 10px; border-radius: 12px; border: 1px solid #d0d7de; color: var(--muted); }
ol.steps li.done { background: #f6f8fa; }
ol.steps li.current { background: #0969da; border-color: #0969da; color: #fff; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
.actions form { margin: 0; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa;
         cursor: pointer; }
button.danger { background: var(--bad); border-color: var(--bad); color: #fff; }
#result.ok { color: var(--ok); } #result.bad { color: var(--bad); }
.muted { color: var(--muted); }
svg.chart { background: #f6f8fa; border-radius: 4px; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var actor = document.getElementById("actor");
  var result = document.getElementById("result");
  try { actor.value = window.localStorage.getItem("graywsgi-actor") || ""; } catch (e) { /* no storage */ }
  var timer = null;
  function schedule(ms) {
    if (timer !== null) { clearTimeout(timer); }
    timer = setTimeout(function () {
      if (document.activeElement === actor) { schedule(ms); } else { window.location.reload(); }
    }, ms);
  }
  schedule(10000);
  Array.prototype.forEach.call(document.querySelectorAll("form.action"), function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var what = form.getAttribute("data-action");
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { return; }
      if (timer !== null) { clearTimeout(timer); }
      var name = actor.value.trim().replace(/[^\\x20-\\x7e]/g, "?");
      try { window.localStorage.setItem("graywsgi-actor", name); } catch (e) { /* no storage */ }
      result.className = "";
      result.textContent = what + "\\u2026";
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: {"X-CSRF-Token": form.elements.csrf.value, "X-Actor": name || "unknown"}
      }).then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, status: response.status, body: body}; });
      }).then(function (answer) {
        result.className = answer.ok ? "ok" : "bad";
        result.textContent = answer.ok ? what + ": done" : what + " refused (" + answer.status + "): " +
          (answer.body.detail || "");
        schedule(answer.ok ? 700 : 6000);
      }).catch(function (error) {
        result.className = "bad";
        result.textContent = what + " failed: " + error;
        schedule(10000);
      });
    });
  });
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


_CSP = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; img-src data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(rate: float | None, digits: int = 1) -> str:
    if rate is None:
        return "–"
    return f"{100 * rate:.{digits}f} %"


def _milliseconds(seconds: object) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "–"
    milliseconds = 1000 * seconds
    return f"{milliseconds:.1f} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"


def _when(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def _chart(route: str, series: t.Sequence[t.Sequence[t.Any]], threshold: float | None) -> str:
    """A small SVG line chart of an error-rate history."""
    width, height, pad = 220, 48, 3
    rates = [float(r) for _, r in series if r is not None]
    top: float = max([0.05, *rates, *([threshold] if threshold is not None and threshold <= 1 else [])]) * 1.1
    times = [float(when) for when, _ in series]
    first, span = (times[0], max(times[-1] - times[0], 1.0)) if times else (0.0, 1.0)

    def x(when: float) -> float:
        return pad + (width - 2 * pad) * (when - first) / span

    def y(rate: float) -> float:
        return height - pad - (height - 2 * pad) * rate / top

    parts = []
    if threshold is not None and threshold <= 1:
        parts.append(
            f'<line x1="0" x2="{width}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#cf222e"'
            ' stroke-dasharray="3 3" stroke-width="1"/>'
        )
    run: list[str] = []
    last: tuple[float, float] | None = None
    for when, rate in series:
        if rate is None:
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{" ".join(run)}"/>')
            run = []
            continue
        point = (x(float(when)), y(float(rate)))
        run.append(f"{point[0]:.1f},{point[1]:.1f}")
        last = point
    if len(run) > 1:
        parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{" ".join(run)}"/>')
    if last is not None:
        parts.append(f'<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5" fill="#0969da"/>')
    latest = _percent(rates[-1]) if rates else "no traffic"
    label = f"Error rate of {route}: {len(series)} samples, latest {latest}, scale 0 to {_percent(top, 0)}"
    return (
        f'<svg class="chart" role="img" aria-label="{_e(label)}" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _share_bar(shares: t.Mapping[str, float], default: str) -> str:
    """A stacked horizontal bar of shares (percent per cluster)."""
    palette = ("#0969da", "#8250df", "#bf3989", "#9a6700", "#1b7c83")
    width, height = 200, 14
    parts, x, n = [], 0.0, 0
    for cluster, share in sorted(shares.items(), key=lambda item: (item[0] == default, item[0])):
        if share <= 0:
            continue
        colour = "#8c959f" if cluster == default else palette[n % len(palette)]
        n += cluster != default
        w = width * share / 100
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour}">'
            f"<title>{_e(cluster)}: {share:g} %</title></rect>"
        )
        x += w
    return (
        f'<svg role="img" aria-hidden="true" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _share_text(shares: t.Mapping[str, float], default: str) -> str:
    ordered = sorted(shares.items(), key=lambda item: (item[0] == default, item[0]))
    return ", ".join(f"{_e(cluster)} {share:g} %" for cluster, share in ordered)


def _render_rollout(rollout: t.Mapping[str, t.Any] | None) -> str:
    if rollout is None:
        return '<p class="muted">No rollout plan.</p>'
    out = []
    steps, current = rollout.get("steps"), rollout.get("step")
    if isinstance(steps, list) and isinstance(current, int) and not isinstance(current, bool):
        items = []
        for i, name in enumerate(steps):
            kind = "done" if i < current else "current" if i == current else "todo"
            mark = ' aria-current="step"' if i == current else ""
            items.append(f'<li class="{kind}"{mark}>{i + 1}. {_e(name)}</li>')
        out.append(f'<ol class="steps" id="rollout-steps">{"".join(items)}</ol>')
        name = rollout.get("step_name", steps[current] if 0 <= current < len(steps) else current)
        out.append(f'<p id="rollout-step">Current step: <strong>{_e(name)}</strong>'
                   f" ({current + 1} of {len(steps)})</p>")
    rows = []
    for key, value in rollout.items():
        if key in ("steps", "step", "step_name"):
            continue
        if key in ("since", "refusal_at") or key.endswith("_at"):
            shown = _when(value)
        elif key == "weight" and isinstance(value, (int, float)):
            shown = f"{value:g} %"
        elif isinstance(value, (dict, list)):
            shown = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif value is None or value == "":
            shown = "–"
        else:
            shown = str(value)
        rows.append(f"<dt>{_e(key.replace('_', ' '))}</dt><dd>{_e(shown)}</dd>")
    out.append(f"<dl>{''.join(rows)}</dl>")
    return "".join(out)


def render_page(document: t.Mapping[str, t.Any], *, csrf: str = "", can_act: bool = True) -> str:
    """The status page for a status document (:meth:`AdminApp.status`)."""
    default = document["default_cluster"]
    kill = document.get("kill_switch")
    if kill is None:
        banner = ('<div class="banner unknown" id="kill-switch">Kill switch: not available'
                  "<small>No state store: the router has no guard.</small></div>")
    elif kill.get("killed") is None:
        banner = (f'<div class="banner unknown" id="kill-switch">Kill switch: unknown'
                  f"<small>{_e(kill.get('error', ''))}</small></div>")
    elif kill["killed"]:
        banner = (f'<div class="banner set" id="kill-switch">Kill switch: SET — canary shares are 0'
                  f"<small>{_e(kill.get('reason') or 'no reason given')} · since {_e(_when(kill.get('since')))}"
                  f" · revision {_e(kill.get('revision'))}</small></div>")
    else:
        reason = kill.get("reason")
        detail = f"last change: {_e(reason)} · {_e(_when(kill.get('since')))}" if reason else "never set"
        banner = (f'<div class="banner clear" id="kill-switch">Kill switch: clear — configured shares apply'
                  f"<small>{detail}</small></div>")

    threshold = document.get("trip_error_rate")
    route_rows = []
    for name, route in document["routes"].items():
        breaker = route.get("breaker")
        if route.get("default"):
            breaker_cell = '<span class="muted">default cluster</span>'
        elif breaker is not None:
            state = str(breaker.get("state"))
            held = " (held)" if breaker.get("held") else ""
            breaker_cell = f'<span class="state {_e(state)}">{_e(state.replace("_", "-"))}{held}</span>'
        elif route.get("shared") and route["shared"].get("open"):
            breaker_cell = '<span class="state open">open (shared)</span>'
        else:
            breaker_cell = '<span class="muted">no traffic yet</span>'
        traffic = (
            '<span class="state taking">taking traffic</span>'
            if route.get("taking_traffic")
            else f'<span class="state off">{_e(route.get("why_not"))}</span>'
        )
        window = route.get("window")
        if window is None:
            counts = '<td colspan="4" class="muted">not measured (no guard)</td>'
        else:
            latency = window.get("mean_latency_seconds")
            latency_text = _milliseconds(latency)
            counts = (
                f'<td class="num">{window["requests"]}</td>'
                f'<td class="num">{window["errors"]} ({_percent(window["error_rate"])})</td>'
                f'<td class="num">{window["slow"]} ({_percent(window["slow_rate"])})</td>'
                f'<td class="num">{latency_text}</td>'
            )
        chart = _chart(name, route.get("error_rate_history", []), threshold)
        route_rows.append(
            f'<tr data-route="{_e(name)}"><th scope="row">{_e(name)}</th><td>{breaker_cell}</td><td>{traffic}</td>'
            f"{counts}<td>{chart}</td></tr>"
        )

    rule_rows = []
    for rule in document["rules"]:
        factor = f" × {rule['factor']:g}" if rule["factor"] != 1 else ""
        rule_rows.append(
            f'<tr data-rule="{_e(rule["name"])}"><th scope="row">{_e(rule["name"])}</th>'
            f'<td>{_e(rule["mode"])}{_e(factor)}</td>'
            f'<td class="shares configured">{_share_bar(rule["shares"], default)}<br>'
            f'{_share_text(rule["shares"], default)}</td>'
            f'<td class="shares in-force">{_share_bar(rule["in_force"], default)}<br>'
            f'{_share_text(rule["in_force"], default)}</td></tr>'
        )
    unmatched = "answered 404" if document.get("no_match") == "404" else f"go to {_e(default)}"

    def action(name: str, label: str, css: str = "", confirm: str = "") -> str:
        confirm_attr = f' data-confirm="{_e(confirm)}"' if confirm else ""
        return (
            f'<form class="action" method="post" action="{name}" data-action="{name}"{confirm_attr}>'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            f'<button type="submit" id="{name}-button" class="{css}">{_e(label)}</button></form>'
        )

    buttons = []
    if can_act:
        buttons.append(action("rollback", "Roll back (kill switch)", "danger",
                              "Roll back: every canary share becomes 0 on every worker. Continue?"))
        buttons.append(action("resume", "Resume"))
    if document.get("rollout") is not None:
        buttons.append(action("advance", "Advance to the next step"))
    if not buttons:
        buttons.append('<span class="muted">No actions: no state store and no rollout plan.</span>')
    threshold_text = f" Dashed line: the breaker's threshold, {_percent(threshold)}." if threshold is not None else ""

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>graywsgi admin · {_e(document["rules_version"])}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<header><h1>graywsgi admin</h1>
<span class="meta">rules <strong id="rules-version">{_e(document["rules_version"])}</strong>
 · default cluster {_e(default)} · {_e(_when(document.get("generated_at")))}</span></header>
<main>
{banner}
<section id="actions"><h2>Actions</h2>
<div class="actions">{"".join(buttons)}
<label>Your name (audit log) <input id="actor" autocomplete="name" maxlength="100"></label>
<span id="result" role="status"></span></div></section>
<section id="rollout"><h2>Rollout plan</h2>{_render_rollout(document.get("rollout"))}</section>
<section id="routes"><h2>Routes</h2>
<table><thead><tr><th>Route</th><th>Breaker</th><th>Traffic</th><th>Requests (window)</th><th>Errors</th>
<th>Slow</th><th>Mean latency</th><th>Error rate</th></tr></thead>
<tbody>{"".join(route_rows)}</tbody></table>
<p class="muted">Charts: error rate per status render in this worker, oldest left.{threshold_text}</p></section>
<section id="rules"><h2>Shares by rule</h2>
<table><thead><tr><th>Rule</th><th>Mode</th><th>Configured</th><th>In force</th></tr></thead>
<tbody>{"".join(rule_rows) or '<tr><td colspan="4" class="muted">No rules.</td></tr>'}</tbody></table>
<p class="muted">Requests no rule matches {unmatched}.</p></section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
