"""graywsgi.contrib.flask -- and the settings every integration shares
(graywsgi.contrib), driven through Flask's own test client."""

from __future__ import annotations

import hashlib
import logging
import os
import typing as t
from pathlib import Path

import pytest
from flask import Blueprint, Flask, Response, g, render_template_string, request, stream_with_context, url_for

from graywsgi import current
from graywsgi.core.breaker import BreakerListener, BreakerPolicy
from graywsgi.core.context import GrayContext, get_current
from graywsgi.contrib import GrayChain, SettingsError, build_chain, chain_of
from graywsgi.contrib.flask import FlaskGray, GrayWSGI
from graywsgi.errors import ConfigurationError
from graywsgi.layers.guard import Guard
from graywsgi.core.hashing import fnv1a_32
from graywsgi.layers.router import Router
from graywsgi.rules.model import Cluster, RuleSet
from graywsgi.layers.split import CanarySplit
from graywsgi.state.rollout_state import FileStateStore, MemoryStateStore
from graywsgi.state.rule_store import FileStore, MemoryStore
from graywsgi.httputil.trust import sign

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CANARY_ID = next(f"user-{n}" for n in range(1000) if fnv1a_32(f"user-{n}") % 100 < 15)
STABLE_ID = next(f"user-{n}" for n in range(1000) if fnv1a_32(f"user-{n}") % 100 >= 15)
TO_CANARY = {"X-Traffic-Color": "canary"}
TO_STABLE = {"X-Traffic-Color": "stable"}

RULES_YAML = """\
id: {version}
clusters: {{stable: {{}}, canary: {{}}, v2: {{}}}}
rules:
  - name: all
    split: [{{cluster: canary, weight: {weight}}}]
"""


def write_rules(path: Path, version: str = "v1", weight: int = 15) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(RULES_YAML.format(version=version, weight=weight))
    os.replace(tmp, path)
    return path


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules.yaml")


def make_app(**config: object) -> Flask:
    app = Flask("shop")
    app.config.update({"GRAYWSGI_" + name: value for name, value in config.items()})

    @app.get("/")
    def index() -> dict[str, object]:
        return {"route": current.route, "gray_id": current.gray_id, "rules_version": current.rules_version}

    return app


# Importable targets for settings given as import strings.
def resolve_tenant(environ: WSGIEnvironment) -> dict[str, str]:
    return {"tenant": environ.get("HTTP_X_TENANT", "none")}


def canary_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"canary app for {current.gray_id}".encode()]


class CountingListener(BreakerListener):
    pass


# -- the extension pattern ----------------------------------------------------


def test_extension_wraps_wsgi_app_and_registers_itself() -> None:
    app = make_app(PERCENT=15)
    original = app.wsgi_app
    gray = GrayWSGI(app)
    state = app.extensions["graywsgi"]
    assert isinstance(state, FlaskGray) and state.extension is gray
    assert app.wsgi_app is state.chain.entry and state.chain.app == original
    assert gray.chain(app) is state.chain and chain_of(app) is state.chain
    with app.app_context():
        assert gray.chain() is state.chain
    client = app.test_client()
    assert client.get("/", headers={"X-Gray-ID": CANARY_ID}).json["route"] == "canary"
    assert client.get("/", headers={"X-Gray-ID": STABLE_ID}).json["route"] == "stable"


def test_app_factory_one_extension_many_apps(rules_file: Path) -> None:
    gray = GrayWSGI()

    def create_app(**config: object) -> Flask:
        app = make_app(**config)
        gray.init_app(app)
        return app

    split_app = create_app(PERCENT=100)
    router_app = create_app(RULES=str(rules_file))
    assert split_app.extensions["graywsgi"].chain.split is not None
    assert router_app.extensions["graywsgi"].chain.router is not None
    assert split_app.test_client().get("/", headers={"X-Gray-ID": STABLE_ID}).json["route"] == "canary"
    body = router_app.test_client().get("/", headers={"X-Gray-ID": STABLE_ID}).json
    assert body == {"route": "stable", "gray_id": STABLE_ID, "rules_version": "v1"}


def test_init_app_twice_is_refused() -> None:
    app = make_app()
    gray = GrayWSGI(app)
    with pytest.raises(ConfigurationError, match="already initialised"):
        gray.init_app(app)
    with pytest.raises(ConfigurationError, match="already initialised"):
        GrayWSGI(app)


def test_chain_of_an_app_without_graywsgi() -> None:
    app = make_app()
    assert chain_of(app) is None and chain_of(object()) is None
    with pytest.raises(RuntimeError, match="not initialised"):
        GrayWSGI().chain(app)


def test_bad_template_name() -> None:
    with pytest.raises(ConfigurationError, match="template_name"):
        GrayWSGI(template_name="not a name")


# -- current in views, hooks, templates -----------------------------------------


def test_current_in_every_kind_of_handler() -> None:
    app = make_app(PERCENT=15)
    seen: dict[str, str | None] = {}

    @app.before_request
    def before() -> None:
        seen["before_request"] = current.route
        g.before = current.gray_id

    @app.after_request
    def after(response: Response) -> Response:
        seen["after_request"] = current.route
        response.headers["X-Route"] = str(current.route)
        return response

    @app.teardown_request
    def teardown(error: BaseException | None) -> None:
        seen["teardown_request"] = current.route

    @app.errorhandler(ZeroDivisionError)
    def failed(error: ZeroDivisionError) -> tuple[str, int]:
        seen["errorhandler"] = current.route
        return "handled", 500

    @app.get("/fail")
    def fail() -> str:
        return str(1 // 0)

    @app.get("/template")
    def template() -> str:
        return render_template_string("{{ gray.route }}/{{ gray.gray_id }}/{{ g.before }}")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> t.Iterator[str]:
            for n in range(3):
                yield f"{n}:{current.route}:{request.path};"

        return Response(stream_with_context(chunks()))

    GrayWSGI(app)
    client = app.test_client()
    headers = {"X-Gray-ID": CANARY_ID}
    assert client.get("/template", headers=headers).text == f"canary/{CANARY_ID}/{CANARY_ID}"
    assert client.get("/stream", headers=headers).text == "0:canary:/stream;1:canary:/stream;2:canary:/stream;"
    response = client.get("/fail", headers=headers)
    assert (response.status_code, response.text, response.headers["X-Route"]) == (500, "handled", "canary")
    assert seen == {
        "before_request": "canary",
        "after_request": "canary",
        "teardown_request": "canary",
        "errorhandler": "canary",
    }


def test_template_name_is_configurable_and_none_outside_a_request() -> None:
    app = make_app()
    GrayWSGI(app, template_name="release")
    with app.test_request_context("/"):  # no graywsgi in this request
        assert render_template_string("{{ release is none }}") == "True"


def test_test_client_with_preserved_context() -> None:
    app = make_app(PERCENT=15)
    GrayWSGI(app)
    with app.test_client() as client:
        client.get("/", headers={"X-Gray-ID": CANARY_ID})
        assert request.path == "/"  # Flask's preserved request context still works
        context = request.environ["graywsgi.context"]
        assert isinstance(context, GrayContext) and context.route == "canary"
    assert get_current() is None  # graywsgi's context was released with the response


def test_request_bodies_arrive_intact() -> None:
    app = make_app(PERCENT=15)

    @app.post("/echo")
    def echo() -> dict[str, object]:
        body = request.get_data()
        return {"route": current.route, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    GrayWSGI(app)
    body = os.urandom(200_000)
    response = app.test_client().post("/echo", data=body, headers={"X-Gray-ID": CANARY_ID})
    assert response.json == {"route": "canary", "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


# -- settings -------------------------------------------------------------------


def test_no_settings_is_a_dark_launch() -> None:
    app = make_app()
    GrayWSGI(app)
    chain = app.extensions["graywsgi"].chain
    assert chain.split is not None and chain.split.percent == 0 and chain.extraction.trust is None
    client = app.test_client()
    assert client.get("/", headers={"X-Gray-ID": CANARY_ID}).json["route"] == "stable"
    assert client.get("/", headers=TO_CANARY).json["route"] == "canary"


def check_guarded(chain: GrayChain) -> bool:
    guard = chain.guard
    assert isinstance(guard, Guard)
    assert isinstance(chain.state, FileStateStore) and chain.state.check_interval == 0.25
    assert guard.policy == BreakerPolicy(min_requests=5, error_rate=0.5)
    assert guard.refuse_when_open is True and guard.retry_on_stable is False
    assert [type(listener) for listener in guard._listeners[1:]] == [CountingListener]
    return True


@pytest.mark.parametrize(
    "config, check",
    [
        pytest.param({"PERCENT": 5}, lambda c: isinstance(c.split, CanarySplit) and c.split.percent == 5,
                     id="percent split"),
        pytest.param({"PERCENT": 5, "COLORS": {"Blue": "canary"}},
                     lambda c: c.split is not None and c.split.colors == {"blue": "canary"}, id="colours"),
        pytest.param({"RULES": "{rules}"}, lambda c: isinstance(c.router, Router)
                     and isinstance(c.rules, FileStore) and c.rules.check_interval == 1.0 and c.guard is None,
                     id="rule file"),
        pytest.param({"RULES": Path("{rules}"), "RULES_CHECK_INTERVAL": 0},
                     lambda c: isinstance(c.rules, FileStore) and c.rules.check_interval == 0, id="rule file path"),
        pytest.param({"RULES": RuleSet(clusters={"stable": Cluster(), "canary": Cluster()}, id="mem")},
                     lambda c: isinstance(c.rules, MemoryStore) and c.rules.current().version_id == "mem",
                     id="rule set object"),
        pytest.param({"RULES": "{rules}", "GUARD": True},
                     lambda c: isinstance(c.guard, Guard) and isinstance(c.state, MemoryStateStore),
                     id="guard with defaults"),
        pytest.param({"RULES": "{rules}", "STATE": "{tmp}/state.json", "STATE_CHECK_INTERVAL": 0.25,
                      "BREAKER": {"min_requests": 5, "error_rate": 0.5}, "GUARD_REFUSE_WHEN_OPEN": True,
                      "GUARD_RETRY_ON_STABLE": False, "GUARD_LISTENERS": ["tests.contrib.test_flask:CountingListener"]},
                     check_guarded, id="guard from settings"),
        pytest.param({"RULES": "{rules}", "GUARD": False}, lambda c: c.guard is None, id="guard off"),
        pytest.param({"RULES": "{rules}", "APPS": {"canary": "tests.contrib.test_flask:canary_wsgi"}},
                     lambda c: c.router is not None and c.router.apps == {"canary": canary_wsgi},
                     id="dispatch apps by import string"),
        pytest.param({"TRUSTED_NETWORKS": ["10.0.0.0/8"], "SIGNING_KEYS": {"gw": "s3cret"},
                      "SIGNATURE_HEADER": "X-Gateway-Signature", "SIGNATURE_MAX_SKEW": 30},
                     lambda c: c.extraction.trust is not None and c.extraction.trust.key_ids == ("gw",)
                     and c.extraction.trust.signature_header == "X-Gateway-Signature"
                     and c.extraction.trust.max_skew == 30, id="trust boundary"),
        pytest.param({"REQUIRED": ["gray_id"], "MAX_LENGTH": 64, "FALLBACK_AFTER": 3, "QUERY_FALLBACK": None,
                      "RESOLVERS": ["tests.contrib.test_flask:resolve_tenant"],
                      "EXTRACTION_BREAKER": {"failure_threshold": 5, "slow_call": 0.1, "open_for": 10},
                      "EXTRACTION_REFUSE_WHEN_OPEN": True},
                     lambda c: c.extraction.required == {"gray_id"} and c.extraction.max_length == 64
                     and c.extraction.fallback_after == 3 and c.extraction.query_fallback is None
                     and c.extraction.resolvers == (resolve_tenant,) and c.extraction.refuse_when_open
                     and c.extraction.breaker.failure_threshold == 5 and c.extraction.breaker.open_for == 10,
                     id="extraction options"),
    ],
)
def test_settings_build_the_chain(
    config: dict[str, object], check: t.Callable[[GrayChain], bool], rules_file: Path, tmp_path: Path
) -> None:
    def fill(value: object) -> object:
        if isinstance(value, (str, Path)) and "{" in str(value):
            filled = str(value).format(rules=rules_file, tmp=tmp_path)
            return Path(filled) if isinstance(value, Path) else filled
        return value

    app = make_app(**{name: fill(value) for name, value in config.items()})
    GrayWSGI(app)
    assert check(app.extensions["graywsgi"].chain)


def test_a_ready_guard_and_state_store(rules_file: Path) -> None:
    guard = Guard()
    app = make_app(RULES=str(rules_file), GUARD=guard)
    GrayWSGI(app)
    assert app.extensions["graywsgi"].chain.guard is guard
    store = MemoryStateStore()
    chain = build_chain(make_app().wsgi_app, {"RULES": str(rules_file), "STATE": store})
    assert chain.state is store


def test_resolvers_and_dispatch_run(rules_file: Path) -> None:
    write_rules(rules_file, weight=100)
    app = make_app(RULES=str(rules_file), APPS={"canary": "tests.contrib.test_flask:canary_wsgi"},
                   RESOLVERS=[resolve_tenant])
    GrayWSGI(app)
    client = app.test_client()
    assert client.get("/", headers={"X-Gray-ID": STABLE_ID}).text == f"canary app for {STABLE_ID}"
    app2 = make_app(RESOLVERS=["tests.contrib.test_flask:resolve_tenant"])

    @app2.get("/tenant")
    def tenant() -> str:
        return str(current.tenant)

    GrayWSGI(app2)
    assert app2.test_client().get("/tenant", headers={"X-Tenant": "acme"}).text == "acme"


def test_trust_boundary_from_settings() -> None:
    app = make_app(PERCENT=15, TRUSTED_NETWORKS=["10.0.0.0/8"], SIGNING_KEYS={"gw": "s3cret"})
    GrayWSGI(app)
    client = app.test_client()  # requests come from 127.0.0.1: not a trusted network
    spoofed = client.get("/", headers={"X-Gray-ID": CANARY_ID, "X-Traffic-Color": "canary"}).json
    assert spoofed == {"route": "stable", "gray_id": None, "rules_version": None}
    import time

    signature = sign("s3cret", "gw", {"X-Gray-ID": CANARY_ID}, int(time.time()))
    signed = client.get("/", headers={"X-Gray-ID": CANARY_ID, "X-Gray-Signature": signature}).json
    assert signed["route"] == "canary" and signed["gray_id"] == CANARY_ID
    trusted = client.get("/", headers={"X-Gray-ID": CANARY_ID}, environ_base={"REMOTE_ADDR": "10.1.2.3"}).json
    assert trusted["route"] == "canary"


def test_live_rule_file_edit(rules_file: Path) -> None:
    app = make_app(RULES=str(rules_file), RULES_CHECK_INTERVAL=0)
    GrayWSGI(app)
    client = app.test_client()
    assert client.get("/", headers={"X-Gray-ID": STABLE_ID}).json["rules_version"] == "v1"
    write_rules(rules_file, "v2", 100)
    assert client.get("/", headers={"X-Gray-ID": STABLE_ID}).json == {
        "route": "canary", "gray_id": STABLE_ID, "rules_version": "v2"}


BAD_SETTINGS = [
    ({"PERCNT": 15}, "GRAYWSGI_PERCNT", "did you mean GRAYWSGI_PERCENT?"),
    ({"COMPLETELY_UNKNOWN": 1}, "GRAYWSGI_COMPLETELY_UNKNOWN", "unknown graywsgi setting"),
    ({"RULS": None}, "GRAYWSGI_RULS", "did you mean GRAYWSGI_RULES?"),
    ({"percent": 5}, "GRAYWSGI_percent", "did you mean GRAYWSGI_PERCENT? (names are upper case)"),
    ({"PERCENT": "15"}, "GRAYWSGI_PERCENT", "must be a number"),
    ({"PERCENT": 150}, "GRAYWSGI_PERCENT", "from 0 to 100"),
    ({"PERCENT": True}, "GRAYWSGI_PERCENT", "must be a number"),
    ({"PERCENT": 5, "RULES": "{rules}"}, "GRAYWSGI_PERCENT", "not both"),
    ({"COLORS": {"red": "blue"}}, "GRAYWSGI_COLORS", "'red'"),
    ({"COLORS": ["canary"]}, "GRAYWSGI_COLORS", "must be a dict"),
    ({"COLORS": {"gray": "canary"}, "RULES": "{rules}"}, "GRAYWSGI_COLORS", "colors:"),
    ({"RULES": "{tmp}/missing.yaml"}, "GRAYWSGI_RULES", "missing.yaml"),
    ({"RULES": "{broken}"}, "GRAYWSGI_RULES", "broken.yaml:3"),
    ({"RULES": "redis://127.0.0.1:6379/0#rules"}, "GRAYWSGI_RULES", "RedisRuleStore"),
    ({"RULES": 42}, "GRAYWSGI_RULES", "rule file path"),
    ({"RULES_CHECK_INTERVAL": 1}, "GRAYWSGI_RULES_CHECK_INTERVAL", "needs GRAYWSGI_RULES"),
    ({"RULES": "{rules}", "RULES_CHECK_INTERVAL": -1}, "GRAYWSGI_RULES_CHECK_INTERVAL", ">= 0"),
    ({"APPS": {"canary": "tests.contrib.test_flask:canary_wsgi"}}, "GRAYWSGI_APPS", "needs GRAYWSGI_RULES"),
    ({"RULES": "{rules}", "APPS": {"nosuch": "tests.contrib.test_flask:canary_wsgi"}}, "GRAYWSGI_APPS",
     "'nosuch' not a cluster"),
    ({"RULES": "{rules}", "APPS": {"canary": "tests.no_such_module:app"}}, "GRAYWSGI_APPS",
     "cannot import 'tests.no_such_module:app': No module named 'tests.no_such_module'"),
    ({"RULES": "{rules}", "APPS": {"canary": "tests.contrib.test_flask:nothing"}}, "GRAYWSGI_APPS",
     "module 'tests.contrib.test_flask' has no 'nothing'"),
    ({"RULES": "{rules}", "APPS": {"canary": "canary_wsgi"}}, "GRAYWSGI_APPS", "'package.module:name'"),
    ({"RULES": "{rules}", "APPS": {"canary": 42}}, "GRAYWSGI_APPS", "not a WSGI application"),
    ({"RULES": "{rules}", "PROXY_TIMEOUT": 0}, "GRAYWSGI_PROXY_TIMEOUT", "> 0"),
    ({"TRUSTED_NETWORKS": "10.0.0.0/8"}, "GRAYWSGI_TRUSTED_NETWORKS", "list of strings"),
    ({"TRUSTED_NETWORKS": ["10.0.0.0/33"]}, "GRAYWSGI_TRUSTED_NETWORKS", "10.0.0.0/33"),
    ({"TRUSTED_NETWORKS": []}, "GRAYWSGI_TRUSTED_NETWORKS", "no request could ever"),
    ({"SIGNATURE_HEADER": "X-Sig"}, "GRAYWSGI_SIGNATURE_HEADER", "needs GRAYWSGI_TRUSTED_NETWORKS or"),
    ({"SIGNING_KEYS": {"bad id": "s3cret"}}, "GRAYWSGI_SIGNING_KEYS", "RFC 9110 token"),
    ({"SIGNING_KEYS": {"gw": ""}}, "GRAYWSGI_SIGNING_KEYS", "empty secret"),
    ({"SIGNING_KEYS": {"gw": 42}}, "GRAYWSGI_SIGNING_KEYS", "must be a string"),
    ({"SIGNING_KEYS": {"gw": "s"}, "SIGNATURE_HEADER": "X-Gray-ID"}, "GRAYWSGI_SIGNATURE_HEADER",
     "gray header"),
    ({"SIGNING_KEYS": {"gw": "s"}, "SIGNATURE_MAX_SKEW": -1}, "GRAYWSGI_SIGNATURE_MAX_SKEW", "positive"),
    ({"REQUIRED": ["nope"]}, "GRAYWSGI_REQUIRED", "unknown identifiers"),
    ({"REQUIRED": "gray_id"}, "GRAYWSGI_REQUIRED", "list of strings"),
    ({"MAX_LENGTH": 0}, "GRAYWSGI_MAX_LENGTH", "positive int"),
    ({"MAX_LENGTH": 2.5}, "GRAYWSGI_MAX_LENGTH", "must be an int"),
    ({"FALLBACK_AFTER": 1}, "GRAYWSGI_FALLBACK_AFTER", ">= 2"),
    ({"QUERY_FALLBACK": ""}, "GRAYWSGI_QUERY_FALLBACK", "parameter name"),
    ({"QUERY_FALLBACK": 3}, "GRAYWSGI_QUERY_FALLBACK", "parameter name"),
    ({"RESOLVERS": ["tests.no_such_module:resolve"]}, "GRAYWSGI_RESOLVERS", "cannot import"),
    ({"RESOLVERS": [42]}, "GRAYWSGI_RESOLVERS", "not callable"),
    ({"RESOLVERS": "tests.contrib.test_flask:resolve_tenant"}, "GRAYWSGI_RESOLVERS", "must be a list"),
    ({"EXTRACTION_BREAKER": {"failures": 3}}, "GRAYWSGI_EXTRACTION_BREAKER",
     "unknown field 'failures'; fields are failure_threshold, slow_call, open_for"),
    ({"EXTRACTION_BREAKER": {"failure_threshold": 0}}, "GRAYWSGI_EXTRACTION_BREAKER", ">= 1"),
    ({"EXTRACTION_BREAKER": 3}, "GRAYWSGI_EXTRACTION_BREAKER", "must be a dict"),
    ({"EXTRACTION_REFUSE_WHEN_OPEN": "yes"}, "GRAYWSGI_EXTRACTION_REFUSE_WHEN_OPEN", "True or False"),
    ({"STATE": "{tmp}/state.json"}, "GRAYWSGI_STATE", "needs GRAYWSGI_RULES"),
    ({"RULES": "{rules}", "STATE": 42}, "GRAYWSGI_STATE", "state file path"),
    ({"RULES": "{rules}", "STATE": "ftp://example.invalid/state"}, "GRAYWSGI_STATE", "file path or redis://"),
    ({"RULES": "{rules}", "STATE": "/no/such/dir/state.json"}, "GRAYWSGI_STATE", "does not exist"),
    ({"RULES": "{rules}", "STATE": MemoryStateStore(), "STATE_CHECK_INTERVAL": 1},
     "GRAYWSGI_STATE_CHECK_INTERVAL", "ready store"),
    ({"RULES": "{rules}", "BREAKER": {"error_rate": 2}}, "GRAYWSGI_BREAKER", "error_rate"),
    ({"RULES": "{rules}", "BREAKER": {"threshold": 0.5}}, "GRAYWSGI_BREAKER", "unknown field 'threshold'"),
    ({"RULES": "{rules}", "GUARD": "yes"}, "GRAYWSGI_GUARD", "True, False or a graywsgi.guard.Guard"),
    ({"RULES": "{rules}", "GUARD": False, "BREAKER": {}}, "GRAYWSGI_GUARD", "GRAYWSGI_BREAKER configures"),
    ({"RULES": "{rules}", "GUARD": Guard(), "BREAKER": {}}, "GRAYWSGI_BREAKER", "ready Guard"),
    ({"RULES": "{rules}", "GUARD_REFUSE_WHEN_OPEN": 1}, "GRAYWSGI_GUARD_REFUSE_WHEN_OPEN", "True or False"),
    ({"RULES": "{rules}", "GUARD_LISTENERS": [object()]}, "GRAYWSGI_GUARD_LISTENERS", "BreakerListener"),
    ({"METRICS": {"host": "127.0.0.1"}}, "GRAYWSGI_METRICS", "reserved for statsd metrics"),
    ({"METRICS_PREFIX": "shop"}, "GRAYWSGI_METRICS_PREFIX", "reserved for statsd metrics"),
    ({"OPENAPI": "openapi.yaml"}, "GRAYWSGI_OPENAPI", "reserved for request pre-validation"),
    ({"VALIDATION_MAX_BODY": 1024}, "GRAYWSGI_VALIDATION_MAX_BODY", "reserved for request pre-validation"),
]


def test_extraction_breaker_settings_fields_are_its_constructor_options() -> None:
    """GRAYWSGI_EXTRACTION_BREAKER's fields come from a list, not the
    signature (compiled, the class has none): the list is the constructor's
    options as its source declares them (``clock`` is never a setting)."""
    import ast

    from graywsgi.contrib.settings_layers import EXTRACTION_BREAKER_FIELDS

    source = Path(__file__).resolve().parents[2] / "graywsgi" / "layers" / "extraction_breaker.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "ExtractionBreaker"]
    (init,) = [node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    options = [arg.arg for arg in init.args.args + init.args.kwonlyargs if arg.arg not in ("self", "clock")]
    assert list(EXTRACTION_BREAKER_FIELDS) == options


@pytest.mark.parametrize(
    "config, key, problem",
    [pytest.param(config, key, problem, id=f"{key} {problem}") for config, key, problem in BAD_SETTINGS],
)
def test_bad_settings_raise_naming_the_key(
    config: dict[str, object], key: str, problem: str, rules_file: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters:\n  stable: {}\nrules: [{name: x, split: [{cluster: nope, weight: 5}]}]\n")
    values = {
        name: value.format(rules=rules_file, tmp=tmp_path, broken=broken) if isinstance(value, str) else value
        for name, value in config.items()
    }
    app = make_app(**values)
    original = app.wsgi_app
    with pytest.raises(SettingsError) as raised:
        GrayWSGI(app)
    assert raised.value.setting == key
    assert str(raised.value).startswith(f"{key}: ")
    assert problem in str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert "graywsgi" not in app.extensions and app.wsgi_app == original  # nothing half-done


def test_none_means_not_set() -> None:
    app = make_app(RULES=None, PERCENT=None, STATE=None, METRICS=None, QUERY_FALLBACK=None)
    GrayWSGI(app)
    chain = app.extensions["graywsgi"].chain
    assert chain.split is not None and chain.split.percent == 0
    assert chain.extraction.query_fallback is None  # None is a value of its own here
    assert app.test_client().get("/?gray_id=u").json["gray_id"] is None


def test_settings_must_be_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="must be a dict"):
        build_chain(make_app().wsgi_app, ["PERCENT"])  # type: ignore[arg-type]


# -- blueprints bound to routes -----------------------------------------------------


def blueprint_app(otherwise: t.Literal["404", "fallthrough"], gray: GrayWSGI | None = None) -> tuple[Flask, list[str]]:
    """/new is canary-only; /checkout is overridden for canary by the v2 blueprint."""
    hooks: list[str] = []
    gray = gray or GrayWSGI()
    v2 = Blueprint("v2", __name__)

    @v2.before_request
    def v2_hook() -> None:
        hooks.append("v2.before_request")

    @v2.get("/checkout")
    def checkout() -> str:
        return f"new checkout ({current.route})"

    @v2.get("/new")
    def new() -> str:
        return f"new page, link {url_for('stable_checkout')}"

    @v2.route("/form", methods=["POST"])
    def form() -> str:
        return "new form"

    gray.route_blueprint(v2, "canary", otherwise=otherwise)
    app = make_app(PERCENT=0)
    app.register_blueprint(v2)

    @app.get("/checkout")
    def stable_checkout() -> str:
        return f"old checkout ({current.route}, link {url_for('v2.checkout')})"

    @app.get("/form")
    def stable_form() -> str:
        return "old form (GET only)"

    gray.init_app(app)
    return app, hooks


@pytest.mark.parametrize(
    "otherwise, method, path, headers, status, body",
    [
        pytest.param("404", "GET", "/checkout", TO_CANARY, 200, "new checkout (canary)", id="404: canary served"),
        pytest.param("404", "GET", "/checkout", TO_STABLE, 404, None, id="404: stable gets 404"),
        pytest.param("404", "GET", "/checkout", {}, 404, None, id="404: no colour gets 404"),
        pytest.param("404", "GET", "/new", TO_CANARY, 200, "new page, link /checkout", id="404: url_for works"),
        pytest.param("fallthrough", "GET", "/checkout", TO_CANARY, 200, "new checkout (canary)",
                     id="fallthrough: canary served by the blueprint"),
        pytest.param("fallthrough", "GET", "/checkout", TO_STABLE, 200,
                     "old checkout (stable, link /checkout)", id="fallthrough: stable served by the app"),
        pytest.param("fallthrough", "GET", "/new", TO_STABLE, 404, None,
                     id="fallthrough: nothing to fall to is 404"),
        pytest.param("fallthrough", "POST", "/form", TO_CANARY, 200, "new form",
                     id="fallthrough: canary POST served"),
        pytest.param("fallthrough", "POST", "/form", TO_STABLE, 405, None,
                     id="fallthrough: stable POST finds only a GET rule"),
        pytest.param("fallthrough", "GET", "/form", TO_STABLE, 200, "old form (GET only)",
                     id="fallthrough: stable GET"),
    ],
)
def test_route_blueprint(
    otherwise: t.Literal["404", "fallthrough"], method: str, path: str, headers: dict[str, str],
    status: int, body: str | None,
) -> None:
    app, hooks = blueprint_app(otherwise)
    response = app.test_client().open(path, method=method, headers=headers)
    assert response.status_code == status
    if body is not None:
        assert response.text == body
    served_by_blueprint = status == 200 and body is not None and body.startswith("new")
    assert hooks == (["v2.before_request"] if served_by_blueprint else [])


def test_fallthrough_maps_are_built_once_per_route() -> None:
    app, _ = blueprint_app("fallthrough")
    client = app.test_client()
    for _ in range(3):
        client.get("/checkout", headers=TO_STABLE)
    state = app.extensions["graywsgi"]
    assert list(state._maps) == ["stable"]


def test_bound_blueprints_under_concurrent_requests() -> None:
    """16 threads, alternating routes, all at once: each request gets its own route's view."""
    import threading

    app, hooks = blueprint_app("fallthrough")
    barrier = threading.Barrier(16)
    answers: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = app.test_client()
        colour = "canary" if n % 2 else "stable"
        barrier.wait()
        for _ in range(25):
            text = client.get("/checkout", headers={"X-Traffic-Color": colour}).text
            with lock:
                answers.append((colour, text))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 16 * 25
    assert {text for colour, text in answers if colour == "canary"} == {"new checkout (canary)"}
    assert {text for colour, text in answers if colour == "stable"} == {
        "old checkout (stable, link /checkout)"}
    assert len(hooks) == 8 * 25  # the blueprint's hook ran for canary requests only
    assert list(app.extensions["graywsgi"]._maps) == ["stable"]


def test_nested_blueprint_bound_by_full_or_short_name() -> None:
    for name in ("shop.beta", "beta"):
        gray = GrayWSGI()
        shop = Blueprint("shop", __name__, url_prefix="/shop")
        beta = Blueprint("beta", __name__, url_prefix="/beta")

        @beta.get("/")
        def beta_index() -> str:
            return "beta"

        shop.register_blueprint(beta)
        gray.route_blueprint(name, "canary")
        app = make_app()
        app.register_blueprint(shop)
        gray.init_app(app)
        client = app.test_client()
        assert client.get("/shop/beta/", headers=TO_CANARY).text == "beta"
        assert client.get("/shop/beta/", headers=TO_STABLE).status_code == 404


def test_binding_after_init_app_and_rebinding() -> None:
    gray = GrayWSGI()
    app, _ = blueprint_app("404", gray)
    client = app.test_client()
    assert client.get("/checkout", headers=TO_STABLE).status_code == 404
    gray.route_blueprint("v2", "canary", "stable")
    assert client.get("/checkout", headers=TO_STABLE).text == "new checkout (stable)"


def test_routes_of_a_rule_file_can_be_bound(rules_file: Path) -> None:
    gray = GrayWSGI()
    v2 = Blueprint("v2", __name__, url_prefix="/v2")

    @v2.get("/")
    def v2_index() -> str:
        return f"v2 for {current.route}"

    gray.route_blueprint(v2, "v2")
    app = make_app(RULES=str(rules_file))
    app.register_blueprint(v2)
    gray.init_app(app)
    client = app.test_client()
    assert client.get("/v2/", headers={"X-Traffic-Color": "canary"}).status_code == 404


@pytest.mark.parametrize(
    "call, problem",
    [
        pytest.param(lambda gray: gray.route_blueprint("v2"), "at least one route", id="no routes"),
        pytest.param(lambda gray: gray.route_blueprint("", "canary"), "Blueprint or its name", id="no name"),
        pytest.param(lambda gray: gray.route_blueprint("v2", ""), "not a route name", id="empty route"),
        pytest.param(lambda gray: gray.route_blueprint("v2", "canary", otherwise="410"), "otherwise",
                     id="bad otherwise"),
        pytest.param(lambda gray: gray.route_blueprint("v2", "canry"), "'canry' is not a route",
                     id="unknown route after init"),
    ],
)
def test_route_blueprint_checks(call: t.Callable[[GrayWSGI], None], problem: str) -> None:
    gray = GrayWSGI(make_app())
    with pytest.raises(ConfigurationError, match=problem):
        call(gray)


def test_unknown_route_bound_before_init_app_fails_init() -> None:
    gray = GrayWSGI()
    gray.route_blueprint("v2", "canry")
    with pytest.raises(ConfigurationError, match="'canry' is not a route of this app"):
        gray.init_app(make_app())


def test_bound_blueprint_is_not_served_outside_graywsgi() -> None:
    app, hooks = blueprint_app("404")
    with app.test_request_context("/checkout", headers=TO_CANARY):
        response = app.full_dispatch_request()  # graywsgi never ran: no route
    assert response.status_code == 404 and hooks == []


# -- chain status and gunicorn support ---------------------------------------------


def test_status_and_after_fork(rules_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    split = build_chain(make_app().wsgi_app, {"PERCENT": 7})
    assert split.status() == {"percent": 7.0, "clusters": ["canary", "stable"]}
    assert "CanarySplit(7.0%)" in repr(split)
    chain = build_chain(make_app().wsgi_app, {"RULES": str(rules_file), "GUARD": True})
    assert chain.status()["rules_version"] == "v1" and chain.status()["killed"] is False
    with caplog.at_level(logging.INFO, logger="graywsgi.contrib"):
        first = chain.after_fork()
        second = chain.after_fork()
    assert first == second == {"pid": os.getpid(), "rules_version": "v1", "killed": False}
    assert len([r for r in caplog.records if "graywsgi ready" in r.getMessage()]) == 1


def test_a_chain_has_exactly_one_routing_layer() -> None:
    chain = build_chain(make_app().wsgi_app, {})
    with pytest.raises(ConfigurationError, match="exactly one"):
        GrayChain(app=chain.app, extraction=chain.extraction)
