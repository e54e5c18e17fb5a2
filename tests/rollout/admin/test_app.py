"""Tests of graywsgi.rollout.admin.app: routing, authentication (bearer token, session, CSRF), audit records."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.rollout.admin.app import COOKIE_NAME, SESSION_SECONDS, AdminApp

from tests.conftest import BufferedClient
from tests.rollout.admin.helpers import (
    AUTH,
    PROBLEM,
    TOKEN,
    Setup,
    answer,
    audit_records,
    build,
    csrf_of,
    sign_in,
)


# -- authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, status, challenge",
    [
        pytest.param({}, 401, 'Bearer realm="graywsgi admin"', id="missing"),
        pytest.param({"Authorization": "Bearer wrong-token-0123456789abcd"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="wrong token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="token with a suffix"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="token prefix"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, 'Bearer realm="graywsgi admin"', id="basic scheme"),
        pytest.param({"Authorization": "Bearer "}, 401, 'Bearer realm="graywsgi admin"', id="empty bearer"),
        pytest.param({"Authorization": "Bearer tökén"}, 401,
                     'Bearer realm="graywsgi admin", error="invalid_token"', id="non-ascii"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, 200, None, id="right token"),
        pytest.param({"Authorization": f"bearer  {TOKEN} "}, 200, None, id="scheme in lower case"),
    ],
)
@pytest.mark.parametrize("path", ["/_gray/status", "/_gray/"])
def test_auth_table(setup: Setup, path: str, headers: dict[str, str], status: int, challenge: str | None) -> None:
    response = setup.client.get(path, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.mimetype == PROBLEM
        assert response.headers["WWW-Authenticate"] == challenge
        assert response.json["status"] == 401
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="missing"), pytest.param({"Authorization": "Bearer nope-nope-nope-nope"}, id="wrong")],
)
def test_unauthenticated_action_changes_nothing_and_is_audited(
    setup: Setup, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", headers={**headers, "X-Actor": "mallory"})
    assert response.status_code == 401
    assert setup.state.fetch().revision == 0
    [(action, outcome, actor, remote)] = audit_records(caplog)
    assert (action, actor, remote) == ("rollback", "mallory", "192.0.2.7")
    assert outcome.startswith("denied: ")


@pytest.mark.parametrize("token", [pytest.param(None, id="None"), pytest.param("", id="empty")])
def test_no_token_disables_the_app(tmp_path: Path, token: str | None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        setup = build(tmp_path, token=token)
    warnings = [r for r in caplog.records if r.name == "graywsgi.admin"]
    assert len(warnings) == 1 and "disabled" in warnings[0].getMessage()
    assert not setup.admin.enabled
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for method, path in [("GET", "/_gray/"), ("GET", "/_gray/status"), ("POST", "/_gray/rollback"),
                             ("GET", f"/_gray/?token={TOKEN}"), ("GET", "/_gray/nope")]:
            response = setup.client.open(path, method=method, headers=AUTH)
            assert response.status_code == 404, path
            assert response.mimetype == PROBLEM
            assert "Set-Cookie" not in response.headers
    assert not [r for r in caplog.records if r.name.startswith("graywsgi")]  # warned once, at construction
    assert setup.state.fetch().revision == 0


def test_short_token_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graywsgi.admin"):
        build(tmp_path, token="short")
    assert "shorter than 16" in caplog.text


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"token": "has space"}, "b64token", id="token with a space"),
        pytest.param({"token": "line\nbreak"}, "b64token", id="token with a newline"),
        pytest.param({"token": "tökén-0123456789abc"}, "b64token", id="non-ascii token"),
        pytest.param({"token": b"bytes-token-0123456789"}, "string", id="bytes token"),
        pytest.param({"state": "state.json"}, "StateStore", id="state not a store"),
        pytest.param({"rollout": object()}, "advance", id="rollout without methods"),
        pytest.param({"audit_logger": ""}, "logger", id="empty logger name"),
        pytest.param({"history": 0}, "history", id="no history"),
    ],
)
def test_bad_options_raise(tmp_path: Path, options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(tmp_path, **options)


def test_router_must_be_a_router() -> None:
    with pytest.raises(ConfigurationError, match="Router"):
        AdminApp(answer("x"), token=TOKEN)  # type: ignore[arg-type]


# -- routes and methods -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, status, allow",
    [
        pytest.param("GET", "/_gray/nope", 404, None, id="unknown path"),
        pytest.param("GET", "/_gray/status/", 404, None, id="trailing slash"),
        pytest.param("GET", "/_gray/rollback", 405, "POST", id="GET an action"),
        pytest.param("PUT", "/_gray/resume", 405, "POST", id="PUT an action"),
        pytest.param("POST", "/_gray/status", 405, "GET, HEAD", id="POST status"),
        pytest.param("DELETE", "/_gray/", 405, "GET, HEAD", id="DELETE the page"),
    ],
)
def test_unknown_path_and_wrong_method(setup: Setup, method: str, path: str, status: int, allow: str | None) -> None:
    response = setup.client.open(path, method=method, headers=AUTH)
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    assert response.json["status"] == status
    assert response.headers.get("Allow") == allow
    assert setup.state.fetch().revision == 0


def test_unknown_path_without_token_is_401(setup: Setup) -> None:
    assert setup.client.get("/_gray/nope").status_code == 401


def test_mount_point_without_slash_redirects(setup: Setup) -> None:
    response = setup.client.get("/_gray")
    assert response.status_code == 308
    assert response.headers["Location"] == "/_gray/"
    response = setup.client.get(f"/_gray?token={TOKEN}")
    assert response.headers["Location"] == f"/_gray/?token={TOKEN}"


def test_head(setup: Setup) -> None:
    response = setup.client.head("/_gray/status", headers=AUTH)
    assert response.status_code == 200
    assert response.data == b""


def test_mounted_at_the_root(tmp_path: Path) -> None:
    setup = build(tmp_path)
    client = BufferedClient(setup.admin)
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert "Path=/;" in response.headers["Set-Cookie"]
    assert client.get("/").status_code == 200


# -- browser sign-in and CSRF -------------------------------------------------------


def test_sign_in_sets_a_safe_cookie_and_drops_the_token(setup: Setup) -> None:
    response = setup.client.get(f"/_gray/?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/_gray/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_gray/" in cookie
    assert f"Max-Age={SESSION_SECONDS}" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert TOKEN not in cookie
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    page = setup.client.get("/_gray/")  # the cookie authenticates GET
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert setup.client.get("/_gray/status").status_code == 200


def test_sign_in_over_https_sets_a_secure_cookie(setup: Setup) -> None:
    response = setup.client.get(f"/_gray/?token={TOKEN}", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("/_gray/?token=wrong-token-0123456789", id="wrong token"),
        pytest.param(f"/_gray/?token={TOKEN}&token=other", id="two tokens"),
        pytest.param("/_gray/?token=", id="empty token"),
    ],
)
def test_sign_in_with_a_bad_token(setup: Setup, url: str) -> None:
    response = setup.client.get(url)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert setup.client.get("/_gray/").status_code == 401


def test_query_token_works_only_for_the_page(setup: Setup) -> None:
    assert setup.client.get(f"/_gray/status?token={TOKEN}").status_code == 401
    assert setup.client.post(f"/_gray/rollback?token={TOKEN}").status_code == 401
    assert setup.state.fetch().revision == 0


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda value: value[:-1] + ("A" if value[-1] != "A" else "B"), id="mac changed"),
        pytest.param(lambda value: str(int(value.split(".")[0]) + 10**6) + "." + value.split(".")[1],
                     id="expiry extended"),
        pytest.param(lambda value: TOKEN, id="the token itself"),
        pytest.param(lambda value: "", id="empty"),
    ],
)
def test_forged_session_cookie_is_refused(setup: Setup, tamper: t.Callable[[str], str]) -> None:
    value = sign_in(setup)
    setup.client.set_cookie(COOKIE_NAME, tamper(value), path="/_gray/")
    response = setup.client.get("/_gray/status")
    assert response.status_code == 401


def test_session_expires(setup: Setup) -> None:
    sign_in(setup)
    setup.clock.now += SESSION_SECONDS - 1
    assert setup.client.get("/_gray/status").status_code == 200
    setup.clock.now += 2
    response = setup.client.get("/_gray/status")
    assert response.status_code == 401
    assert "expired" in response.json["detail"]


def test_session_of_another_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    value = sign_in(build(tmp_path / "a"))
    second = build(tmp_path / "b", token="another-token-0123456789abcdef")
    second.client.set_cookie(COOKIE_NAME, value, path="/_gray/")
    assert second.client.get("/_gray/status").status_code == 401


def test_cookie_action_needs_the_csrf_token(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    sign_in(setup)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        missing = setup.client.post("/_gray/rollback")
        wrong = setup.client.post("/_gray/rollback", data={"csrf": "x" * 43})
        wrong_header = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": "x" * 43})
    assert [missing.status_code, wrong.status_code, wrong_header.status_code] == [403, 403, 403]
    assert missing.mimetype == PROBLEM
    assert setup.state.fetch().revision == 0
    assert [outcome.split(":")[0] for _, outcome, _, _ in audit_records(caplog)] == ["denied"] * 3


@pytest.mark.parametrize("how", ["form", "header"])
def test_cookie_action_with_the_page_csrf_token(setup: Setup, how: str, caplog: pytest.LogCaptureFixture) -> None:
    sign_in(setup)
    csrf = csrf_of(setup.client.get("/_gray/").text)
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        if how == "form":
            response = setup.client.post("/_gray/rollback", data={"csrf": csrf}, headers={"X-Actor": "ada"})
        else:
            response = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": csrf, "X-Actor": "ada"})
    assert response.status_code == 200
    assert setup.state.fetch().killed
    assert audit_records(caplog) == [("rollback", "ok", "ada", "192.0.2.7")]


def test_csrf_token_is_bound_to_the_session(setup: Setup) -> None:
    sign_in(setup)
    csrf = csrf_of(setup.client.get("/_gray/").text)
    setup.clock.now += 1
    sign_in(setup)  # a new session cookie (another expiry)
    response = setup.client.post("/_gray/rollback", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403


def test_oversized_form_is_refused(setup: Setup) -> None:
    sign_in(setup)
    response = setup.client.post("/_gray/rollback", data={"csrf": "x", "pad": "y" * 100_000})
    assert response.status_code == 413
    assert setup.state.fetch().revision == 0


def test_bearer_action_needs_no_csrf_even_with_a_cookie(setup: Setup) -> None:
    sign_in(setup)
    assert setup.client.post("/_gray/rollback", headers=AUTH).status_code == 200


def test_wrong_bearer_is_not_rescued_by_a_cookie(setup: Setup) -> None:
    sign_in(setup)
    response = setup.client.get("/_gray/status", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})
    assert response.status_code == 401


def test_page_without_cookie_has_no_csrf_token(setup: Setup) -> None:
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert csrf_of(page) == ""


def test_other_authorization_scheme_leaves_it_to_the_cookie(setup: Setup) -> None:
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}  # e.g. a proxy's own authentication
    assert setup.client.get("/_gray/status", headers=basic).status_code == 401
    sign_in(setup)
    assert setup.client.get("/_gray/status", headers=basic).status_code == 200
    assert setup.client.post("/_gray/rollback", headers=basic).status_code == 403  # still needs CSRF


# -- audit records ------------------------------------------------------------------


def test_audit_logger_name_is_configurable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = build(tmp_path, audit_logger="myapp.audit")
    with caplog.at_level(logging.WARNING):
        setup.client.post("/_gray/rollback", headers=AUTH)
    assert [r.name for r in caplog.records if "admin rollback" in r.getMessage()] == ["myapp.audit"]


@pytest.mark.parametrize(
    "header, actor",
    [
        pytest.param("ada\r\nforged: line", "adaforged: line", id="control characters dropped"),
        pytest.param("  ", "unknown", id="blank"),
        pytest.param("x" * 500, "x" * 100, id="truncated"),
    ],
)
def test_actor_is_cleaned(setup: Setup, header: str, actor: str, caplog: pytest.LogCaptureFixture) -> None:
    environ = {"HTTP_X_ACTOR": header, "HTTP_AUTHORIZATION": AUTH["Authorization"], "REMOTE_ADDR": "192.0.2.7"}
    with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
        response = setup.client.post("/_gray/rollback", environ_overrides=environ)
    assert response.json["actor"] == actor
    assert audit_records(caplog) == [("rollback", "ok", actor, "192.0.2.7")]
