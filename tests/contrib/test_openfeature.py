"""graywsgi.contrib.openfeature: the real OpenFeature SDK, asked from application code inside real requests."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from werkzeug.test import Client
from werkzeug.wrappers import Response

import graywsgi.contrib.openfeature as gray_openfeature
from graywsgi import CanarySplit, Extraction, Router
from graywsgi.core.context import DegradeLevel, GrayContext, bind, release
from graywsgi.contrib.openfeature import NO_CONTEXT_MESSAGE, GrayProvider
from graywsgi.core.hashing import bucket
from graywsgi.rules.model import Backend, Cluster, Rule, RuleSet, VersionRoute

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

RULES = RuleSet(
    id="rules-7",
    clusters={"stable": Cluster(group="control"), "canary": Cluster(group="treatment")},
    rules=(
        Rule(
            name="all",
            versions=(VersionRoute(cluster="canary", range="^2"),),
            split=(Backend("canary", 30),),
        ),
    ),
)

IDS = [f"user-{n}" for n in range(200)]
CANARY_ID = next(i for i in IDS if bucket(i) < 30)  # user-0 (bucket 19)
STABLE_ID = next(i for i in IDS if bucket(i) >= 30)  # user-2 (bucket 57)

#: (method, flag, default) the application evaluates on every request.
ASKED: list[tuple[str, str, t.Any]] = [
    ("boolean", "is-canary", False),
    ("string", "route", "dflt"),
    ("string", "ab-group", "dflt"),
    ("string", "gray-id", "dflt"),
    ("string", "version", "dflt"),
    ("string", "degrade-level", "dflt"),
    ("string", "rules-version", "dflt"),
]


def details(client: OpenFeatureClient, kind: str, flag: str, default: t.Any) -> list[t.Any]:
    evaluated = getattr(client, f"get_{kind}_details")(flag, default)
    return [evaluated.value, evaluated.reason, evaluated.variant, evaluated.error_code]


def flag_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The application: it asks the standard flag API, not graywsgi.current."""
    client = api.get_client()
    body = {flag: details(client, kind, flag, default) for kind, flag, default in ASKED}
    return Response(json.dumps(body), mimetype="application/json")(environ, start_response)


def ask(app: t.Any, **headers: str) -> dict[str, list[t.Any]]:
    response = Client(app).get("/orders", headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(json.loads(response.get_data()))


ROUTER_APP = Extraction(Router(flag_app, RULES))
SPLIT_APP = Extraction(CanarySplit(flag_app, percent=30))


@pytest.fixture(autouse=True)
def provider() -> t.Iterator[GrayProvider]:
    gray = GrayProvider()
    api.set_provider_and_wait(gray)
    yield gray
    api.clear_providers()


# --- the Router (rule set) --------------------------------------------------------------------


def test_canary_by_weighted_split() -> None:
    assert ask(ROUTER_APP, X_Gray_ID=CANARY_ID) == {
        "is-canary": [True, "SPLIT", "canary", None],
        "route": ["canary", "SPLIT", "canary", None],
        "ab-group": ["treatment", "SPLIT", "treatment", None],
        "gray-id": [CANARY_ID, "TARGETING_MATCH", None, None],
        "version": ["dflt", "DEFAULT", None, None],
        "degrade-level": ["NONE", "TARGETING_MATCH", "NONE", None],
        "rules-version": ["rules-7", "TARGETING_MATCH", "rules-7", None],
    }


def test_stable_user_of_the_split_gets_the_default_cluster() -> None:
    assert ask(ROUTER_APP, X_Gray_ID=STABLE_ID) == {
        "is-canary": [False, "DEFAULT", "stable", None],
        "route": ["stable", "DEFAULT", "stable", None],
        "ab-group": ["control", "DEFAULT", "control", None],
        "gray-id": [STABLE_ID, "TARGETING_MATCH", None, None],
        "version": ["dflt", "DEFAULT", None, None],
        "degrade-level": ["NONE", "TARGETING_MATCH", "NONE", None],
        "rules-version": ["rules-7", "TARGETING_MATCH", "rules-7", None],
    }


def test_canary_by_colour_header() -> None:
    answers = ask(ROUTER_APP, X_Gray_ID=STABLE_ID, X_Traffic_Color="canary")
    assert answers["is-canary"] == [True, "TARGETING_MATCH", "canary", None]
    assert answers["route"] == ["canary", "TARGETING_MATCH", "canary", None]
    assert answers["ab-group"] == ["treatment", "TARGETING_MATCH", "treatment", None]


def test_canary_by_version_route() -> None:
    answers = ask(ROUTER_APP, X_Gray_ID=STABLE_ID, X_Version="2.1.0")
    assert answers["is-canary"] == [True, "TARGETING_MATCH", "canary", None]
    assert answers["version"] == ["2.1.0", "TARGETING_MATCH", "2.1.0", None]


def test_no_gray_id_goes_to_the_default_cluster() -> None:
    assert ask(ROUTER_APP) == {
        "is-canary": [False, "DEFAULT", "stable", None],
        "route": ["stable", "DEFAULT", "stable", None],
        "ab-group": ["control", "DEFAULT", "control", None],
        "gray-id": ["dflt", "DEFAULT", None, None],
        "version": ["dflt", "DEFAULT", None, None],
        "degrade-level": ["NONE", "TARGETING_MATCH", "NONE", None],
        "rules-version": ["rules-7", "TARGETING_MATCH", "rules-7", None],
    }


def test_dropped_identifier_reports_the_degrade_level() -> None:
    answers = ask(ROUTER_APP, X_Gray_ID="x" * 300)  # longer than max_length: dropped (L1)
    assert answers["degrade-level"] == ["L1", "TARGETING_MATCH", "L1", None]
    assert answers["gray-id"] == ["dflt", "DEFAULT", None, None]
    assert answers["is-canary"] == [False, "DEFAULT", "stable", None]


def test_no_group_assigned_answers_the_default() -> None:
    rules = RuleSet(clusters={"stable": Cluster(), "canary": Cluster()},
                    rules=(Rule(name="all", split=(Backend("canary", 30),)),), id="plain")
    answers = ask(Extraction(Router(flag_app, rules)), X_Gray_ID=CANARY_ID)
    assert answers["ab-group"] == ["dflt", "DEFAULT", None, None]
    assert answers["route"] == ["canary", "SPLIT", "canary", None]
    assert answers["rules-version"] == ["plain", "TARGETING_MATCH", "plain", None]


def test_default_cluster_other_than_stable() -> None:
    rules = RuleSet(clusters={"v1": Cluster(), "v2": Cluster()}, default_cluster="v1",
                    rules=(Rule(name="all", split=(Backend("v2", 30),)),))
    app = Extraction(Router(flag_app, rules))
    api.set_provider_and_wait(GrayProvider(stable_routes={rules.default_cluster}))
    assert ask(app, X_Gray_ID=CANARY_ID)["is-canary"] == [True, "SPLIT", "v2", None]
    assert ask(app, X_Gray_ID=STABLE_ID)["is-canary"] == [False, "DEFAULT", "v1", None]


# --- CanarySplit (no rule set, no recorded reason) ---------------------------------------------


def test_canary_split_by_hash() -> None:
    answers = ask(SPLIT_APP, X_Gray_ID=CANARY_ID)
    assert answers["is-canary"] == [True, "SPLIT", "canary", None]
    assert answers["route"] == ["canary", "SPLIT", "canary", None]
    assert answers["ab-group"] == ["dflt", "DEFAULT", None, None]
    assert answers["rules-version"] == ["dflt", "DEFAULT", None, None]


def test_canary_split_by_colour_and_stable() -> None:
    assert ask(SPLIT_APP, X_Gray_ID=STABLE_ID, X_Traffic_Color="Canary")["is-canary"] == [
        True, "TARGETING_MATCH", "canary", None]
    assert ask(SPLIT_APP, X_Gray_ID=CANARY_ID, X_Traffic_Color="stable")["is-canary"] == [
        False, "TARGETING_MATCH", "stable", None]
    assert ask(SPLIT_APP, X_Gray_ID=STABLE_ID)["is-canary"] == [False, "DEFAULT", "stable", None]
    assert ask(SPLIT_APP)["is-canary"] == [False, "DEFAULT", "stable", None]


def test_no_split_ran() -> None:
    answers = ask(Extraction(flag_app), X_Gray_ID=CANARY_ID)
    assert answers["is-canary"] == [False, "DEFAULT", None, None]
    assert answers["route"] == ["dflt", "DEFAULT", None, None]
    assert answers["gray-id"] == [CANARY_ID, "TARGETING_MATCH", None, None]


# --- guard reasons (context bound directly) ----------------------------------------------------


@pytest.mark.parametrize(
    ("route_reason", "expected"),
    [
        ("rerouted: breaker open", "DISABLED"),
        ("rerouted: rolled back", "DISABLED"),
        ("retried on the default cluster", "DISABLED"),
        ("no_match", "DEFAULT"),
        ("error", "DEFAULT"),
        ("something new", "UNKNOWN"),
    ],
)
def test_route_reasons_of_the_default_cluster(route_reason: str, expected: str) -> None:
    environ: dict[str, t.Any] = {}
    token = bind(environ, GrayContext("r-1", route="stable", group="control", route_reason=route_reason))
    try:
        client = api.get_client()
        assert details(client, "boolean", "is-canary", True) == [False, expected, "stable", None]
        assert details(client, "string", "ab-group", "x") == ["control", expected, "control", None]
    finally:
        release(token)


def test_fallback_context_is_default() -> None:
    environ: dict[str, t.Any] = {}
    token = bind(environ, GrayContext("r-1", route="stable", degrade_level=DegradeLevel.L3))
    try:
        client = api.get_client()
        assert details(client, "boolean", "is-canary", True) == [False, "DEFAULT", "stable", None]
        assert details(client, "string", "degrade-level", "x") == ["L3", "TARGETING_MATCH", "L3", None]
    finally:
        release(token)


# --- errors --------------------------------------------------------------------------------------


def test_outside_a_request_answers_the_default_with_error() -> None:
    client = api.get_client()
    for kind, flag, default in ASKED:
        evaluated = getattr(client, f"get_{kind}_details")(flag, default)
        assert (evaluated.value, evaluated.reason, evaluated.variant, evaluated.error_code) == (
            default, "ERROR", None, "GENERAL")
        assert evaluated.error_message == NO_CONTEXT_MESSAGE
    assert client.get_boolean_value("is-canary", True) is True


def test_unknown_flag_inside_and_outside_a_request() -> None:
    client = api.get_client()
    outside = client.get_boolean_details("dark-mode", True)
    assert (outside.value, outside.reason, outside.error_code) == (True, "ERROR", "FLAG_NOT_FOUND")
    assert outside.error_message is not None and "'dark-mode'" in outside.error_message

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        body = [details(api.get_client(), "string", "colour", "blue"),
                details(api.get_client(), "integer", "retries", 3)]
        return Response(json.dumps(body))(environ, start_response)

    response = Client(Extraction(Router(app, RULES))).get("/", headers={"X-Gray-ID": CANARY_ID})
    assert json.loads(response.get_data()) == [["blue", "ERROR", None, "FLAG_NOT_FOUND"],
                                               [3, "ERROR", None, "FLAG_NOT_FOUND"]]


def test_type_mismatch() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        client = api.get_client()
        body = [
            details(client, "boolean", "route", False),
            details(client, "string", "is-canary", "no"),
            details(client, "integer", "route", 7),
            details(client, "float", "is-canary", 0.5),
            details(client, "object", "ab-group", {"a": 1}),
        ]
        return Response(json.dumps(body))(environ, start_response)

    response = Client(Extraction(Router(app, RULES))).get("/", headers={"X-Gray-ID": CANARY_ID})
    assert json.loads(response.get_data()) == [
        [False, "ERROR", None, "TYPE_MISMATCH"],
        ["no", "ERROR", None, "TYPE_MISMATCH"],
        [7, "ERROR", None, "TYPE_MISMATCH"],
        [0.5, "ERROR", None, "TYPE_MISMATCH"],
        [{"a": 1}, "ERROR", None, "TYPE_MISMATCH"],
    ]


def test_provider_error_never_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gray_openfeature, "get_current", broken)
    response = Client(ROUTER_APP).get("/", headers={"X-Gray-ID": CANARY_ID})
    assert response.status_code == 200
    answers = json.loads(response.get_data())
    assert answers["is-canary"] == [False, "ERROR", None, "GENERAL"]
    assert answers["route"] == ["dflt", "ERROR", None, "GENERAL"]


def test_provider_error_in_reason_mapping_never_fails_the_request() -> None:
    class Broken(GrayProvider):
        def _route_reason(self, context: GrayContext) -> t.Any:
            raise ValueError("bad mapping")

    api.set_provider_and_wait(Broken())
    response = Client(ROUTER_APP).get("/", headers={"X-Gray-ID": CANARY_ID})
    assert response.status_code == 200
    answers = json.loads(response.get_data())
    assert answers["is-canary"] == [False, "ERROR", None, "GENERAL"]
    assert answers["gray-id"] == [CANARY_ID, "TARGETING_MATCH", None, None]


def test_metadata_and_direct_resolution() -> None:
    gray = GrayProvider()
    assert gray.get_metadata().name == "graywsgi"
    assert api.get_provider_metadata().name == "graywsgi"
    resolved = gray.resolve_string_details("route", "d")
    assert (resolved.value, resolved.reason, resolved.error_code) == ("d", "ERROR", "GENERAL")


def test_import_without_the_sdk_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['openfeature'] = None\n"
        "try:\n"
        "    import graywsgi.contrib.openfeature\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install graywsgi[openfeature]" in result.stdout
