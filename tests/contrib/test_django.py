"""graywsgi.contrib.django: a real Django project (tests/apps/django_site) through
Django's own WSGI handler, wrapped by ``wrap``."""

from __future__ import annotations

import hashlib
import os
import typing as t
from pathlib import Path

import pytest

django = pytest.importorskip("django")

from graywsgi.core.context import get_current  # noqa: E402
from graywsgi.contrib import GrayChain, SettingsError  # noqa: E402
from graywsgi.contrib.django import context_processor, routes_only, wrap  # noqa: E402
from graywsgi.errors import ConfigurationError  # noqa: E402
from graywsgi.core.hashing import fnv1a_32  # noqa: E402
from graywsgi.state.rollout_state import FileStateStore  # noqa: E402

from tests.conftest import BufferedClient  # noqa: E402

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

SETTINGS_MODULE = "tests.apps.django_site.settings"


def canary_id() -> str:
    return next(f"user-{n}" for n in range(1000) if fnv1a_32(f"user-{n}") % 100 < 15)


def stable_id() -> str:
    return next(f"user-{n}" for n in range(1000) if fnv1a_32(f"user-{n}") % 100 >= 15)


@pytest.fixture(scope="module")
def handler() -> t.Iterator[WSGIApplication]:
    """Django's WSGI handler for the test project (Django is set up once per process)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
        if settings.SETTINGS_MODULE != SETTINGS_MODULE:  # pragma: no cover - another test configured Django
            pytest.skip(f"Django is already configured with {settings.SETTINGS_MODULE}")
        yield application


def local_client(application: WSGIApplication) -> BufferedClient:
    """A test client whose requests come from 127.0.0.1 (a trusted network here)."""
    client = BufferedClient(application)
    client.environ_base = {"REMOTE_ADDR": "127.0.0.1"}
    return client


@pytest.fixture
def client(handler: WSGIApplication) -> BufferedClient:
    return local_client(wrap(handler))


def test_wrap_reads_the_graywsgi_setting(handler: WSGIApplication) -> None:
    chain = wrap(handler)
    assert isinstance(chain, GrayChain)
    assert chain.split is not None and chain.split.percent == 15
    assert chain.extraction.trust is not None
    assert [str(n) for n in chain.extraction.trust.trusted_networks] == ["127.0.0.1/32"]


@pytest.mark.parametrize(
    "gray_id, route",
    [pytest.param(canary_id(), "canary", id="id in the canary share"),
     pytest.param(stable_id(), "stable", id="id outside the canary share"),
     pytest.param(None, "stable", id="no id")],
)
def test_views_read_the_context(client: BufferedClient, gray_id: str | None, route: str) -> None:
    headers = {"X-Gray-ID": gray_id} if gray_id else {}
    response = client.get("/", headers=headers)
    assert response.status_code == 200
    assert response.json == {
        "route": route,
        "gray_id": gray_id,
        "meta_is_current": True,
        "rules_version": None,
        "reason": None,
    }


def test_untrusted_peer_cannot_choose_its_route(client: BufferedClient) -> None:
    response = client.get(
        "/",
        headers={"X-Gray-ID": canary_id(), "X-Traffic-Color": "canary"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.json["route"] == "stable" and response.json["gray_id"] is None


def test_templates_see_the_context_through_the_context_processor(client: BufferedClient) -> None:
    response = client.get("/page", headers={"X-Gray-ID": canary_id()})
    assert response.text.strip() == f"route=canary id={canary_id()}"
    assert context_processor(object()) == {"gray": None}  # outside a request


def test_streamed_response_reads_the_context_while_it_is_iterated(client: BufferedClient) -> None:
    response = client.get("/stream", headers={"X-Traffic-Color": "canary"})
    assert response.text == "0:canary;1:canary;2:canary;"


def test_context_is_still_bound_when_django_closes_the_response(handler: WSGIApplication) -> None:
    from django.core.signals import request_finished

    seen: list[str | None] = []

    def on_finished(sender: object, **kwargs: object) -> None:
        context = get_current()
        seen.append(context.route if context is not None else None)

    request_finished.connect(on_finished)
    try:
        local_client(wrap(handler)).get("/", headers={"X-Traffic-Color": "canary"})
    finally:
        request_finished.disconnect(on_finished)
    assert seen == ["canary"]


@pytest.mark.parametrize(
    "body",
    [pytest.param(b"", id="empty"),
     pytest.param(b"a=1&b=2", id="form"),
     pytest.param(os.urandom(300_000), id="300 KB binary")],
)
def test_request_bodies_arrive_intact(client: BufferedClient, body: bytes) -> None:
    response = client.post("/echo", data=body, headers={"X-Gray-ID": canary_id()},
                           content_type="application/octet-stream")
    assert response.json == {"route": "canary", "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@pytest.mark.parametrize(
    "headers, status",
    [pytest.param({"X-Traffic-Color": "canary"}, 200, id="canary is served"),
     pytest.param({"X-Traffic-Color": "stable"}, 404, id="stable gets 404"),
     pytest.param({}, 404, id="no colour, no id: stable, 404")],
)
def test_routes_only(client: BufferedClient, headers: dict[str, str], status: int) -> None:
    response = client.get("/canary-only", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response.text == "new feature for canary"


def test_routes_only_outside_graywsgi_is_404() -> None:
    from django.http import Http404

    @routes_only("canary")
    def view() -> str:
        return "served"

    with pytest.raises(Http404):
        view()


def test_routes_only_needs_route_names() -> None:
    with pytest.raises(ConfigurationError, match="route names"):
        routes_only()


def test_a_failing_view_is_answered_500(client: BufferedClient, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/boom", headers={"X-Traffic-Color": "canary"})
    assert response.status_code == 500
    assert "view failed on canary" in caplog.text


def test_rule_file_and_live_edit(handler: WSGIApplication, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"

    def write(version: str, weight: int) -> None:
        tmp = tmp_path / "rules.tmp"
        tmp.write_text(f"id: {version}\nclusters: {{stable: {{}}, canary: {{}}}}\n"
                       f"rules: [{{name: all, split: [{{cluster: canary, weight: {weight}}}]}}]\n")
        os.replace(tmp, rules)

    write("v1", 0)
    client = local_client(wrap(handler, settings={"RULES": str(rules), "RULES_CHECK_INTERVAL": 0}))
    first = client.get("/", headers={"X-Gray-ID": canary_id()}).json
    assert (first["route"], first["rules_version"], first["reason"]) == ("stable", "v1", "default")
    write("v2", 100)
    second = client.get("/", headers={"X-Gray-ID": canary_id()}).json
    assert (second["route"], second["rules_version"], second["reason"]) == ("canary", "v2", "weight")


def test_kill_switch_from_settings_sends_canary_to_stable(handler: WSGIApplication, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("clusters: {stable: {}, canary: {}}\nrules: [{name: all, split: [{cluster: canary, weight: 100}]}]\n")
    chain = wrap(handler, settings={"RULES": str(rules), "STATE": str(tmp_path / "state.json"),
                                    "STATE_CHECK_INTERVAL": 0})
    assert isinstance(chain.state, FileStateStore)
    client = local_client(chain)
    headers = {"X-Gray-ID": stable_id()}
    assert client.get("/", headers=headers).json["route"] == "canary"
    chain.state.rollback("test")
    after = client.get("/", headers=headers).json
    assert (after["route"], after["reason"]) == ("stable", "rerouted: rolled back")


@pytest.mark.parametrize(
    "value, key, problem",
    [
        pytest.param(["PERCENT", 15], "GRAYWSGI", "must be a dict", id="not a dict"),
        pytest.param({"PERCNT": 15}, "GRAYWSGI['PERCNT']", "did you mean GRAYWSGI['PERCENT']", id="typo"),
        pytest.param({"PERCENT": 150}, "GRAYWSGI['PERCENT']", "from 0 to 100", id="percent out of range"),
        pytest.param({"RULES": "/no/such/rules.yaml"}, "GRAYWSGI['RULES']", "/no/such/rules.yaml",
                     id="missing rule file"),
        pytest.param({"TRUSTED_NETWORKS": ["10.0.0.300/8"]}, "GRAYWSGI['TRUSTED_NETWORKS']", "10.0.0.300",
                     id="bad network"),
        pytest.param({"METRICS": {"host": "127.0.0.1"}}, "GRAYWSGI['METRICS']", "reserved",
                     id="reserved metrics"),
        pytest.param({"OPENAPI": "openapi.yaml"}, "GRAYWSGI['OPENAPI']", "reserved", id="reserved openapi"),
    ],
)
def test_bad_settings_name_the_entry(handler: WSGIApplication, value: object, key: str, problem: str) -> None:
    from django.test import override_settings

    with override_settings(GRAYWSGI=value), pytest.raises(SettingsError) as raised:
        wrap(handler)
    assert raised.value.setting == key
    assert str(raised.value).startswith(key + ": ")
    assert problem in str(raised.value)


def test_no_graywsgi_setting_means_every_default(handler: WSGIApplication) -> None:
    from django.conf import settings
    from django.test import override_settings

    with override_settings():
        del settings.GRAYWSGI
        chain = wrap(handler)
    assert chain.split is not None and chain.split.percent == 0
    assert chain.extraction.trust is None
