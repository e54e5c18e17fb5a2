"""Tests of graywsgi.httputil.trusted_networks: peer addresses, trusted networks, ProxyFix."""

from __future__ import annotations

import ipaddress
import json
import typing as t

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client
from werkzeug.wrappers import Response

from graywsgi.core.context import Source
from graywsgi.httputil.gray_headers import GRAY_HEADERS
from graywsgi.httputil.signing import sign
from graywsgi.httputil.trust import TRUST_ENVIRON_KEY, TrustPolicy
from tests.httputil.conftest import ALL_GRAY, NEW_KEY, NOW, make_environ, signed_policy

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# --- networks -----------------------------------------------------------------

NETWORKS = ["10.0.0.0/8", "192.168.7.7", "2001:db8::/32", "2001:db8:ffff::1", "::ffff:172.16.0.0/108"]


@pytest.mark.parametrize(
    ("remote_addr", "expected"),
    [
        pytest.param("10.1.2.3", Source.TRUSTED, id="v4 inside CIDR"),
        pytest.param("10.255.255.255", Source.TRUSTED, id="v4 last address of CIDR"),
        pytest.param("11.0.0.1", Source.UNTRUSTED, id="v4 outside"),
        pytest.param("192.168.7.7", Source.TRUSTED, id="single v4 address"),
        pytest.param("192.168.7.8", Source.UNTRUSTED, id="neighbour of single v4 address"),
        pytest.param("2001:db8:1::5", Source.TRUSTED, id="v6 inside CIDR"),
        pytest.param("2001:DB8:1::5", Source.TRUSTED, id="v6 upper case"),
        pytest.param("2001:db9::1", Source.UNTRUSTED, id="v6 outside"),
        pytest.param("::ffff:10.0.0.1", Source.TRUSTED, id="v4-mapped v6 peer, v4 network"),
        pytest.param("::ffff:11.0.0.1", Source.UNTRUSTED, id="v4-mapped v6 peer outside"),
        pytest.param("::ffff:192.168.7.7", Source.TRUSTED, id="v4-mapped peer, single address"),
        pytest.param("172.16.3.4", Source.TRUSTED, id="v4 peer, v4-mapped network"),
        pytest.param("172.32.0.1", Source.UNTRUSTED, id="v4 peer outside v4-mapped network"),
        pytest.param("::ffff:0a00:0001", Source.TRUSTED, id="v4-mapped peer in hex form"),
        pytest.param("2001:db8::1%eth0", Source.TRUSTED, id="v6 with zone id"),
        pytest.param("not-an-ip", Source.UNTRUSTED, id="garbage"),
        pytest.param("10.0.0.1:443", Source.UNTRUSTED, id="address with port"),
        pytest.param("[2001:db8::1]", Source.UNTRUSTED, id="bracketed v6"),
        pytest.param(" 10.0.0.1", Source.UNTRUSTED, id="leading space"),
        pytest.param("10.0.0.1/8", Source.UNTRUSTED, id="network as address"),
        pytest.param("", Source.UNTRUSTED, id="empty (unix socket)"),
        pytest.param("unix:/run/app.sock", Source.UNTRUSTED, id="unix socket path"),
        pytest.param("1" * 5000, Source.UNTRUSTED, id="very long"),
        pytest.param(b"10.0.0.1", Source.UNTRUSTED, id="bytes, not str"),
        pytest.param(None, Source.UNTRUSTED, id="None"),
    ],
)
def test_peer_networks(remote_addr: object, expected: Source) -> None:
    policy = TrustPolicy(trusted_networks=NETWORKS)
    environ = make_environ(ALL_GRAY, REMOTE_ADDR=remote_addr)
    assert policy.classify(environ) is expected
    assert policy.classify(environ) is expected  # cached lookup agrees


def test_missing_remote_addr_is_untrusted() -> None:
    environ = make_environ(ALL_GRAY)
    assert "REMOTE_ADDR" not in environ
    assert TrustPolicy(trusted_networks=["0.0.0.0/0", "::/0"]).classify(environ) is Source.UNTRUSTED


def test_v4_peer_does_not_match_v6_networks() -> None:
    policy = TrustPolicy(trusted_networks=["::/0"])
    assert policy.classify(make_environ(REMOTE_ADDR="10.0.0.1")) is Source.UNTRUSTED
    assert policy.classify(make_environ(REMOTE_ADDR="::1")) is Source.TRUSTED


def test_v4_mapped_peer_also_matches_enclosing_v6_network() -> None:
    policy = TrustPolicy(trusted_networks=["::/0"])
    assert policy.classify(make_environ(REMOTE_ADDR="::ffff:10.0.0.1")) is Source.TRUSTED


def test_trusted_networks_are_parsed_once() -> None:
    policy = TrustPolicy(trusted_networks=NETWORKS)
    assert policy.trusted_networks == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.168.7.7/32"),
        ipaddress.IPv6Network("2001:db8::/32"),
        ipaddress.IPv6Network("2001:db8:ffff::1/128"),
        ipaddress.IPv4Network("172.16.0.0/12"),
    )


# --- ProxyFix interplay -----------------------------------------------------------


def proxyfix_get(policy: TrustPolicy, remote_addr: str, headers: dict[str, str]) -> t.Any:
    """ProxyFix(x_for=1) -> a layer calling enforce -> an app echoing what it saw."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen = {
            "trust": environ[TRUST_ENVIRON_KEY].value,
            "remote_addr": environ.get("REMOTE_ADDR"),
            "gray": {key: environ[key] for key in GRAY_HEADERS if key in environ},
        }
        return Response(json.dumps(seen), mimetype="application/json")(environ, start_response)

    def trust_layer(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        policy.enforce(environ)
        return app(environ, start_response)

    client = Client(ProxyFix(trust_layer, x_for=1))
    response = client.get("/", headers=headers, environ_base={"REMOTE_ADDR": remote_addr})
    return response.json


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trust_verdict", "app_remote_addr"),
    [
        pytest.param("10.0.0.2", "203.0.113.7", "trusted", "203.0.113.7", id="trusted proxy forwards client"),
        pytest.param("203.0.113.7", "10.0.0.2", "untrusted", "10.0.0.2", id="client spoofs proxy in XFF"),
        pytest.param("203.0.113.7", None, "untrusted", "203.0.113.7", id="client direct, no XFF"),
        pytest.param("10.0.0.2", None, "trusted", "10.0.0.2", id="proxy without XFF"),
        pytest.param("::ffff:10.0.0.2", "198.51.100.1", "trusted", "198.51.100.1", id="mapped proxy address"),
    ],
)
def test_proxyfix_rewritten_remote_addr_is_not_the_peer(
    peer: str, forwarded_for: str | None, trust_verdict: str, app_remote_addr: str
) -> None:
    headers = dict(ALL_GRAY)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    seen = proxyfix_get(TrustPolicy(trusted_networks=["10.0.0.0/8"]), peer, headers)
    assert seen["trust"] == trust_verdict
    assert seen["remote_addr"] == app_remote_addr
    expected_gray = len(GRAY_HEADERS) if trust_verdict == "trusted" else 0
    assert len(seen["gray"]) == expected_gray


def test_proxyfix_with_signature_from_untrusted_peer() -> None:
    policy = signed_policy(trusted_networks=["10.0.0.0/8"])
    header = sign(NEW_KEY, "k2024", ALL_GRAY, NOW)
    headers = {**ALL_GRAY, "X-Gray-Signature": header, "X-Forwarded-For": "10.0.0.9"}
    seen = proxyfix_get(policy, "203.0.113.7", headers)
    assert seen["trust"] == "signed"
    assert seen["gray"]["HTTP_X_GRAY_ID"] == "user-42"


@pytest.mark.parametrize(
    "orig",
    [
        pytest.param({"REMOTE_ADDR": None}, id="orig without REMOTE_ADDR value"),
        pytest.param({}, id="orig empty"),
        pytest.param({"REMOTE_ADDR": "203.0.113.7"}, id="orig untrusted"),
        pytest.param("10.0.0.2", id="orig not a mapping"),
        pytest.param({"REMOTE_ADDR": 10}, id="orig REMOTE_ADDR not a str"),
    ],
)
def test_proxyfix_orig_never_falls_back_to_rewritten_remote_addr(orig: object) -> None:
    policy = TrustPolicy(trusted_networks=["10.0.0.0/8"])
    environ = make_environ(ALL_GRAY, REMOTE_ADDR="10.0.0.2")
    environ["werkzeug.proxy_fix.orig"] = orig
    assert policy.classify(environ) is Source.UNTRUSTED


def test_proxyfix_orig_trusted_peer() -> None:
    policy = TrustPolicy(trusted_networks=["10.0.0.0/8"])
    environ = make_environ(ALL_GRAY, REMOTE_ADDR="203.0.113.7")
    environ["werkzeug.proxy_fix.orig"] = {"REMOTE_ADDR": "10.0.0.2"}
    assert policy.classify(environ) is Source.TRUSTED
