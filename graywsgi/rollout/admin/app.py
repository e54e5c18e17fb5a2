"""
The admin WSGI app
==================

:class:`AdminApp`: the routing of requests to the status document
(:mod:`graywsgi.rollout.admin.status`), the page
(:mod:`graywsgi.rollout.admin.page`) and the actions
(:mod:`graywsgi.rollout.admin.actions`), with authentication, the audit
record of every action and the security headers of every answer.

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
the page (:mod:`graywsgi.rollout.admin.page`) also a Content-Security-Policy
that allows only its own inline script and style (by hash) and requests to
the app itself.

Unknown paths answer 404 and known paths with another method 405 with
``Allow``, both problem+json (after authentication: a caller without the
token learns nothing about the routes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import typing as t
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.http import dump_cookie, parse_cookie
from werkzeug.wrappers import Request, Response

from graywsgi.errors import ConfigurationError, GrayError, problem_response
from graywsgi.layers.router import Router
from graywsgi.rollout.admin.actions import _ACTIONS, RolloutControl, _perform, _PlanControl, _Refused
from graywsgi.rollout.admin.page import _CSP, render_page
from graywsgi.rollout.admin.status import HISTORY_SIZE, _History, _status_document
from graywsgi.state.rollout_state import StateStore

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["COOKIE_NAME", "SESSION_SECONDS", "AdminApp"]

logger = logging.getLogger("graywsgi.admin")

#: The browser session cookie (scoped to the app's path).
COOKIE_NAME = "graywsgi_admin"
#: How long a browser stays signed in after ``GET /?token=``.
SESSION_SECONDS = 12 * 3600

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_FORM_BYTES = 16 * 1024
_MAX_ACTOR = 100
_PAGE_METHODS = ("GET", "HEAD")
_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_REALM = 'Bearer realm="graywsgi admin"'


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
    :param rollout: the rollout plan engine
        (:class:`~graywsgi.rollout.admin.actions.RolloutControl`);
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
            raise ConfigurationError(f"state must be a graywsgi.state.StateStore, got {state!r}")
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
            result = _perform(action, actor, self.state, self._control)
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
        return _status_document(self.router, self.state, self.rollout, self.evolution, self._history, self._clock())


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

