"""Tests of graywsgi.rollout.admin.page in a real headless Chromium, served over real HTTP on 127.0.0.1.

Skipped with the reason where Chromium or Playwright is missing, outside CI
only; under CI (``CI`` set) a missing browser fails. Screenshots go to
``$GRAYWSGI_SCREENSHOTS`` (or the test's tmp dir); each test prints their paths.
"""

from __future__ import annotations

import json
import logging
import struct
import typing as t
from pathlib import Path

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from graywsgi.core.breaker import BreakerPolicy
from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.rollout.admin.app import AdminApp
from graywsgi.rules.files import parse_rules
from graywsgi.state.rollout_state import FileStateStore

from tests import browser
from tests.conftest import BufferedClient
from tests.rollout.admin.helpers import Clock

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN = "browser-test-token-5f0c2a9e81"

RULES_YAML = """
id: shop-2026-11
clusters: {stable: {}, canary: {}}
rules:
  - name: checkout
    match: {path: {prefix: /checkout}}
    split: [{cluster: canary, weight: 0}]
  - name: catalogue
    match: {path: {prefix: /catalogue}}
    split: [{cluster: canary, weight: 30}]
plan:
  rule: checkout
  cluster: canary
  steps:
    - {name: dark-launch, weight: 0}
    - {name: first-slice, weight: 5}
    - {name: ramp-25, weight: 25}
    - {name: full, weight: 100}
"""


def serve(name: str) -> t.Callable[[WSGIEnvironment, StartResponse], t.Iterable[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        status = 500 if environ.get("HTTP_X_FAIL") else 200
        return Response(json.dumps({"served_by": name}), status=status, mimetype="application/json")(
            environ, start_response
        )

    return app


class Site(t.NamedTuple):
    server: browser.LiveServer
    router: Router
    admin: AdminApp
    state: FileStateStore
    clock: Clock
    shots: Path

    @property
    def sign_in_url(self) -> str:
        return f"{self.server.url}/_gray/?token={TOKEN}"


@pytest.fixture
def site(tmp_path: Path) -> t.Iterator[Site]:
    state = FileStateStore(tmp_path / "state.json", check_interval=0)
    guard = Guard(policy=BreakerPolicy(min_requests=200, error_rate=0.35), state=state)
    router = Router(serve("stable"), parse_rules(RULES_YAML, filename="rules.yaml"),
                    apps={"canary": serve("canary")}, guard=guard)
    assert router.rollout is not None
    router.rollout.start("release-bot")
    router.rollout.advance("release-bot", force=True)  # first-slice: 5 %
    clock = Clock()
    admin = AdminApp(router, token=TOKEN, clock=clock)
    # Traffic and a few status renders a second apart, so the charts have a history.
    client = BufferedClient(router)
    for second in range(12):
        for i in range(10):
            fail = {"X-Fail": "1"} if i < second % 4 else {}
            client.post(f"/catalogue/{i}", headers={"X-Gray-ID": f"user-{second}-{i}", **fail})
        admin.status()
        clock.now += 1
    server = browser.LiveServer(DispatcherMiddleware(router, {"/_gray": admin}))
    try:
        yield Site(server, router, admin, state, clock, browser.screenshot_dir(tmp_path / "screenshots"))
    finally:
        server.stop()


def assert_png(path: Path, min_width: int = 800) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= 400, (width, height)


def test_page_in_chromium_shows_the_rollout_and_rolls_back(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with browser.playwright_page() as (page, visits):
        browser.check_local(site.sign_in_url)
        page.goto(site.sign_in_url)
        # Signed in by cookie; the token is gone from the address bar.
        assert page.url == f"{site.server.url}/_gray/"
        cookies = page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"], c["path"]) for c in cookies] == [
            ("graywsgi_admin", True, "Strict", "/_gray/")
        ]
        assert TOKEN not in cookies[0]["value"]

        banner = page.locator("#kill-switch")
        assert banner.inner_text().startswith("Kill switch: clear")
        assert page.locator("#rules-version").inner_text() == "shop-2026-11"
        assert page.locator("#rollout-step").inner_text() == "Current step: first-slice (2 of 4)"
        assert page.locator("#rollout-steps li[aria-current=step]").inner_text() == "2. first-slice"
        routes = page.locator("#routes tbody th").all_inner_texts()
        assert routes == ["stable", "canary"]
        canary = page.locator('#routes tr[data-route="canary"]')
        assert "closed" in canary.inner_text() and "taking traffic" in canary.inner_text()
        assert canary.locator("svg.chart polyline").count() == 1
        checkout = page.locator('#rules tr[data-rule="checkout"]')
        assert "canary 5 %, stable 95 %" in checkout.locator("td.configured").inner_text()
        catalogue = page.locator('#rules tr[data-rule="catalogue"]')
        assert "canary 30 %, stable 70 %" in catalogue.locator("td.in-force").inner_text()
        before = site.shots / "admin-page.png"
        page.screenshot(path=str(before), full_page=True)
        print(f"screenshot: {before}")

        # Roll back from the page: confirm the dialog, as a person would.
        page.fill("#actor", "Ada (on call)")
        page.once("dialog", lambda dialog: dialog.accept())
        with caplog.at_level(logging.WARNING, logger="graywsgi.audit"):
            page.click("#rollback-button")
            page.locator("#kill-switch.set").wait_for(timeout=15000)  # the page reloads itself
        assert site.state.fetch().killed
        assert "Ada (on call)" in page.locator("#kill-switch").inner_text()
        assert "canary 0 %, stable 100 %" in catalogue.locator("td.in-force").inner_text()
        assert "kill switch set" in canary.inner_text()
        audit = [r for r in caplog.records if r.name == "graywsgi.audit"]
        assert [(r.graywsgi_action, r.graywsgi_outcome, r.graywsgi_actor, r.graywsgi_remote_addr)
                for r in audit] == [("rollback", "ok", "Ada (on call)", "127.0.0.1")]
        after = site.shots / "admin-page-rolled-back.png"
        page.screenshot(path=str(after), full_page=True)
        print(f"screenshot: {after}")

        page.click("#resume-button")
        page.locator("#kill-switch.clear").wait_for(timeout=15000)
        assert not site.state.fetch().killed

    assert visits.blocked == []
    assert visits.console_errors == []  # no CSP violation, no script error
    assert all(url.startswith(site.server.url) for url in visits.local)
    assert_png(before)
    assert_png(after)


def test_page_in_chromium_command_line(site: Site) -> None:
    chromium = browser.require_chromium()
    dom = browser.dump_dom(site.sign_in_url, chromium=chromium)
    assert 'id="kill-switch">Kill switch: clear' in dom
    assert '<th scope="row">canary</th>' in dom and '<th scope="row">stable</th>' in dom
    assert "canary 30 %, stable 70 %" in dom
    assert "Current step: <strong>first-slice</strong>" in dom

    site.state.rollback("bad deploy")
    shot = browser.screenshot(site.sign_in_url, site.shots / "admin-page-cli.png", chromium=chromium)
    print(f"screenshot: {shot}")
    assert_png(shot)
    dom = browser.dump_dom(site.sign_in_url, chromium=chromium)
    assert "Kill switch: SET" in dom and "bad deploy" in dom


def test_browser_refuses_other_hosts() -> None:
    with pytest.raises(ValueError, match="only visits"):
        browser.check_local("http://example.com/")
    with pytest.raises(ValueError, match="only visits"):
        browser.check_local("http://127.0.0.1.example.com/")


def test_missing_browser_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        browser.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        browser.require_chromium()
