"""Tests of graywsgi.rollout.admin.page: the HTML page and its Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from graywsgi.layers.guard import Guard
from graywsgi.layers.router import Router
from graywsgi.rollout.admin.app import AdminApp
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet
from graywsgi.state.rollout_state import MemoryStateStore

from tests.conftest import BufferedClient
from tests.rollout.admin.helpers import AUTH, TOKEN, FakeRollout, Setup, answer, canary_users


# -- the page -----------------------------------------------------------------------

HOSTILE_ROUTE = "<script>alert('route')</script>"
HOSTILE_RULE = '"><img src=x onerror=alert(1)>'


def test_page_escapes_hostile_names(tmp_path: Path) -> None:
    rules = RuleSet(
        id="<i>v</i>",
        clusters={"stable": Cluster(), HOSTILE_ROUTE: Cluster()},
        rules=(Rule(name=HOSTILE_RULE, split=(Backend(HOSTILE_ROUTE, 30),)),),
    )
    state = MemoryStateStore()
    router = Router(answer("stable"), rules, guard=Guard(state=state))
    admin = AdminApp(router, token=TOKEN, rollout=FakeRollout())
    client = BufferedClient(admin)
    client.post("/rollback", headers={**AUTH, "X-Actor": "<b>mallory</b>"})
    page = client.get("/", headers=AUTH).text
    for hostile in (HOSTILE_ROUTE, HOSTILE_RULE, "<i>v</i>", "<b>mallory</b>", "<b>25 %</b>",
                    "<script>alert('rollout')</script>", "<img"):
        assert hostile not in page, hostile
    assert "&lt;script&gt;alert(&#x27;route&#x27;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "rolled back by &lt;b&gt;mallory&lt;/b&gt; from the admin app" in page
    assert page.count("<script>") == 1  # the page's own, nothing injected


def test_page_headers_and_csp(setup: Setup) -> None:
    response = setup.client.get("/_gray/", headers=AUTH)
    assert response.mimetype == "text/html" and response.mimetype_params["charset"] == "utf-8"
    for name, value in [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]:
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    page = response.text
    for tag in ("script", "style"):
        [content] = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # No external assets: no URL with a scheme or a protocol-relative one in any attribute.
    assert not re.search(r'(?:src|href|action)="(?:[a-z]+:|//)(?!,)', page)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_page_shows_the_state_at_a_glance(setup: Setup) -> None:
    for user in canary_users(3):
        setup.traffic.get("/", headers={"X-Gray-ID": user, "X-Fail": "1"})
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert 'id="kill-switch">Kill switch: clear' in page
    assert '<tr data-route="canary">' in page and '<tr data-route="stable">' in page
    assert "canary 10 %, stable 90 %" in page
    assert 'class="chart"' in page
    assert "No rollout plan." in page
    setup.client.post("/_gray/rollback", headers=AUTH)
    page = setup.client.get("/_gray/", headers=AUTH).text
    assert 'class="banner set" id="kill-switch">Kill switch: SET' in page
    assert "canary 0 %, stable 100 %" in page
