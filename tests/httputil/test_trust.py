from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import typing as t

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client, create_environ
from werkzeug.wrappers import Response

from graywsgi.httputil import trust
from graywsgi.core.context import Source
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.trust import (
    GRAY_HEADER_NAMES,
    GRAY_HEADERS,
    TRUST_ENVIRON_KEY,
    TrustPolicy,
    canonical_string,
    sign,
)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

NOW = 1_700_000_000
OLD_KEY = "old-secret-2023"
NEW_KEY = b"new-secret-\x00\xff-2024"

ALL_GRAY = {
    "X-Gray-ID": "user-42",
    "X-Traffic-Color": "canary",
    "X-Canary-Weight": "0.25",
    "X-Version": "2.1.0",
    "X-Env": "prod",
    "X-Canary-ID": "c-7",
}


def make_environ(
    headers: t.Mapping[str, str] | None = None, **overrides: t.Any
) -> WSGIEnvironment:
    """A request environ; headers are set as raw WSGI keys, so any value goes."""
    environ = create_environ("/")
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(overrides)
    return environ


def signed_policy(**options: t.Any) -> TrustPolicy:
    options.setdefault("signing_keys", {"k2023": OLD_KEY, "k2024": NEW_KEY})
    options.setdefault("clock", lambda: float(NOW))
    return TrustPolicy(**options)


def test_gray_headers_are_exported_in_canonical_order() -> None:
    assert GRAY_HEADERS == (
        "HTTP_X_GRAY_ID",
        "HTTP_X_TRAFFIC_COLOR",
        "HTTP_X_CANARY_WEIGHT",
        "HTTP_X_VERSION",
        "HTTP_X_ENV",
        "HTTP_X_CANARY_ID",
    )
    assert GRAY_HEADER_NAMES == (
        "x-gray-id",
        "x-traffic-color",
        "x-canary-weight",
        "x-version",
        "x-env",
        "x-canary-id",
    )


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


def test_nothing_configured_trusts_nobody() -> None:
    policy = TrustPolicy()
    header = sign(OLD_KEY, "k2023", ALL_GRAY, NOW)
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": header}, REMOTE_ADDR="127.0.0.1")
    assert policy.classify(environ) is Source.UNTRUSTED
    assert policy.trusted_networks == ()
    assert policy.key_ids == ()


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


# --- signatures -----------------------------------------------------------------

GOOD_DIGEST = sign(NEW_KEY, "k2024", ALL_GRAY, NOW).rpartition("v1=")[2]
OTHER_TIME_DIGEST = sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 301).rpartition("v1=")[2]


def classify_signed(
    signature: str | None,
    headers: t.Mapping[str, str] = ALL_GRAY,
    **options: t.Any,
) -> Source:
    policy = signed_policy(**options)
    full = dict(headers)
    if signature is not None:
        full["X-Gray-Signature"] = signature
    return policy.classify(make_environ(full, REMOTE_ADDR="203.0.113.7"))


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, NOW), id="new key with kid"),
        pytest.param(sign(OLD_KEY, "k2023", ALL_GRAY, NOW), id="old key with kid"),
        pytest.param(f"t={NOW},v1={GOOD_DIGEST}", id="no kid, tried against all keys"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST.upper()}", id="upper-case hex"),
        pytest.param(f"t={NOW} , kid=k2024 ,\tv1={GOOD_DIGEST}", id="whitespace around commas"),
        pytest.param(f"  t={NOW},kid=k2024,v1={GOOD_DIGEST}  ", id="surrounding whitespace"),
        pytest.param(f"v1={GOOD_DIGEST},kid=k2024,t={NOW}", id="params in another order"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},v2=abc,alg=x", id="unknown params ignored"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},future=", id="unknown param with empty value"),
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 300), id="exactly max_skew old"),
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, NOW + 300), id="exactly max_skew ahead"),
    ],
)
def test_signature_accepted(signature: str) -> None:
    assert classify_signed(signature) is Source.SIGNED


def test_signature_over_no_gray_headers() -> None:
    assert classify_signed(sign(NEW_KEY, "k2024", {}, NOW), headers={}) is Source.SIGNED


def test_signature_tolerates_whitespace_around_header_values() -> None:
    header = sign(NEW_KEY, "k2024", {"X-Gray-ID": "u1", "X-Env": "a\tb"}, NOW)
    sent = {"X-Gray-ID": "  u1\t", "X-Env": "a\tb"}
    assert classify_signed(header, headers=sent) is Source.SIGNED


def test_signature_over_utf8_value() -> None:
    header = sign(NEW_KEY, "k2024", {"X-Gray-ID": "usér"}, NOW)
    # A WSGI server hands the UTF-8 bytes over as a latin-1 string (PEP 3333).
    sent = {"X-Gray-ID": "usér".encode("utf-8").decode("latin-1")}
    assert classify_signed(header, headers=sent) is Source.SIGNED


def test_empty_header_equals_absent_header() -> None:
    header = sign(NEW_KEY, "k2024", {"X-Gray-ID": "u1"}, NOW)
    assert classify_signed(header, headers={"X-Gray-ID": "u1", "X-Env": ""}) is Source.SIGNED


def _tampered(**changes: str) -> dict[str, str]:
    return {**ALL_GRAY, **changes}


GOOD = sign(NEW_KEY, "k2024", ALL_GRAY, NOW)
WITHOUT_ENV = {k: v for k, v in ALL_GRAY.items() if k != "X-Env"}


@pytest.mark.parametrize(
    ("signature", "headers"),
    [
        pytest.param(sign("wrong-secret", "k2024", ALL_GRAY, NOW), ALL_GRAY, id="wrong key"),
        pytest.param(sign(NEW_KEY, "k2023", ALL_GRAY, NOW), ALL_GRAY, id="right key, other kid"),
        pytest.param(sign("wrong-secret", "k9", ALL_GRAY, NOW).replace("kid=k9,", ""), ALL_GRAY, id="no kid, no key matches"),
        pytest.param(GOOD, _tampered(**{"X-Gray-ID": "user-43"}), id="tampered gray id"),
        pytest.param(GOOD, _tampered(**{"X-Canary-Weight": "1"}), id="tampered canary weight"),
        pytest.param(GOOD, _tampered(**{"X-Traffic-Color": "CANARY"}), id="tampered case of value"),
        pytest.param(sign(NEW_KEY, "k2024", WITHOUT_ENV, NOW), ALL_GRAY, id="header added after signing"),
        pytest.param(GOOD, WITHOUT_ENV, id="header removed after signing"),
        pytest.param(GOOD, _tampered(**{"X-Gray-ID": "user-42, evil"}), id="client value appended"),
        pytest.param(GOOD, _tampered(**{"X-Env": "prod\x01"}), id="control character in value"),
        pytest.param(GOOD, _tampered(**{"X-Env": "pr\u20acd"}), id="non-latin-1 str in environ"),
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 301), ALL_GRAY, id="expired"),
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, NOW + 301), ALL_GRAY, id="future beyond skew"),
        pytest.param(sign(NEW_KEY, "k2024", ALL_GRAY, 0), ALL_GRAY, id="epoch"),
        pytest.param(f"t={NOW - 301},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="t changed"),
        pytest.param(f"t={NOW},kid=k2024,v1={OTHER_TIME_DIGEST}", ALL_GRAY, id="digest of other t"),
        pytest.param(sign(NEW_KEY, "k1999", ALL_GRAY, NOW), ALL_GRAY, id="unknown kid"),
        pytest.param("", ALL_GRAY, id="empty"),
        pytest.param("garbage", ALL_GRAY, id="garbage"),
        pytest.param(GOOD_DIGEST, ALL_GRAY, id="bare digest"),
        pytest.param(f"t={NOW},t={NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="duplicate t"),
        pytest.param(f"t={NOW},kid=k2024,kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="duplicate kid"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},v1={GOOD_DIGEST}", ALL_GRAY, id="duplicate v1"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},x=1,x=1", ALL_GRAY, id="duplicate unknown param"),
        pytest.param(f"kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="missing t"),
        pytest.param(f"t={NOW},kid=k2024", ALL_GRAY, id="missing v1"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST[:-2]}", ALL_GRAY, id="short digest"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST}00", ALL_GRAY, id="long digest"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST[:-1]}g", ALL_GRAY, id="non-hex digest"),
        pytest.param(f"t={NOW},kid=,v1={GOOD_DIGEST}", ALL_GRAY, id="empty kid"),
        pytest.param(f"t={NOW},kid=k(2024),v1={GOOD_DIGEST}", ALL_GRAY, id="kid not a token"),
        pytest.param(f"t=,kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="empty t"),
        pytest.param(f"t=0{NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="t leading zero"),
        pytest.param(f"t=+{NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="t with plus"),
        pytest.param(f"t=-{NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="t negative"),
        pytest.param(f"t={NOW}.0,kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="t fractional"),
        pytest.param("t=1_700_000_000,kid=k2024,v1=" + GOOD_DIGEST, ALL_GRAY, id="t with underscores"),
        pytest.param("t=" + "9" * 400 + ",kid=k2024,v1=" + GOOD_DIGEST, ALL_GRAY, id="t huge"),
        pytest.param(f"t = {NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="space around ="),
        pytest.param(f"T={NOW},kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="upper-case param name"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},", ALL_GRAY, id="trailing comma"),
        pytest.param(f"t={NOW},,kid=k2024,v1={GOOD_DIGEST}", ALL_GRAY, id="empty item"),
        pytest.param(f"t={NOW};kid=k2024;v1={GOOD_DIGEST}", ALL_GRAY, id="semicolons"),
        pytest.param(f"t={NOW},kid=k2024,v1={GOOD_DIGEST},x", ALL_GRAY, id="param without ="),
        pytest.param(f"{GOOD},pad=" + "a" * 1024, ALL_GRAY, id="longer than 1024"),
        pytest.param(f"{GOOD}\r\n", ALL_GRAY, id="CRLF at end"),
        pytest.param(f"{GOOD},x=\u00e9", ALL_GRAY, id="non-ascii param"),
    ],
)
def test_signature_rejected(signature: str, headers: dict[str, str]) -> None:
    assert classify_signed(signature, headers=headers) is Source.UNTRUSTED


def test_digest_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: t.Any, b: t.Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert classify_signed(GOOD) is Source.SIGNED
    assert calls == [(calls[0][0], bytes.fromhex(GOOD_DIGEST))]


def test_signature_header_not_a_str_is_untrusted() -> None:
    policy = signed_policy()
    environ = make_environ(ALL_GRAY, HTTP_X_GRAY_SIGNATURE=b"t=1")
    assert policy.classify(environ) is Source.UNTRUSTED


def test_gray_value_not_a_str_is_untrusted() -> None:
    policy = signed_policy()
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": GOOD})
    environ["HTTP_X_ENV"] = 42
    assert policy.classify(environ) is Source.UNTRUSTED


def test_custom_max_skew() -> None:
    header = sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 10)
    assert classify_signed(header, max_skew=10) is Source.SIGNED
    assert classify_signed(header, max_skew=9.5) is Source.UNTRUSTED


def test_clock_is_read_per_request() -> None:
    now = [float(NOW)]
    policy = signed_policy(clock=lambda: now[0])
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": GOOD})
    assert policy.classify(environ) is Source.SIGNED
    now[0] += 301
    assert policy.classify(environ) is Source.UNTRUSTED


def test_custom_signature_header() -> None:
    policy = signed_policy(signature_header="X-Edge-Sig")
    environ = make_environ({**ALL_GRAY, "x-edge-sig": GOOD})
    assert policy.classify(environ) is Source.SIGNED
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": GOOD})
    assert policy.enforce(environ) is Source.UNTRUSTED
    assert "HTTP_X_GRAY_SIGNATURE" in environ  # not our header; left alone


def test_rejection_is_logged_at_debug_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="graywsgi.trust")
    assert classify_signed(sign(NEW_KEY, "k1999", ALL_GRAY, NOW)) is Source.UNTRUSTED
    assert classify_signed(sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 1000)) is Source.UNTRUSTED
    messages = [record.getMessage() for record in caplog.records]
    assert "unknown key id 'k1999'" in messages[0]
    assert "outside the 300 s window" in messages[1]
    assert all(record.levelno == logging.DEBUG for record in caplog.records)
    assert not any(OLD_KEY in message for message in messages)


@pytest.mark.parametrize(
    "clock",
    [
        pytest.param(lambda: 1 / 0, id="clock raises"),
        pytest.param(lambda: float("nan"), id="clock returns NaN"),
        pytest.param(lambda: "soon", id="clock returns garbage"),
    ],
)
def test_broken_clock_means_untrusted_not_an_error(
    clock: t.Callable[[], float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="graywsgi.trust")
    policy = signed_policy(clock=clock)
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": GOOD})
    assert policy.enforce(environ) is Source.UNTRUSTED
    assert not any(key in environ for key in GRAY_HEADERS)


# --- rotation ---------------------------------------------------------------------


def test_rotation_procedure() -> None:
    old_sig = sign(OLD_KEY, "k2023", ALL_GRAY, NOW)
    new_sig = sign(NEW_KEY, "k2024", ALL_GRAY, NOW)
    old_kidless = old_sig.replace("kid=k2023,", "")
    new_kidless = new_sig.replace("kid=k2024,", "")

    only_old = {"k2023": OLD_KEY}
    both = {"k2023": OLD_KEY, "k2024": NEW_KEY}
    only_new = {"k2024": NEW_KEY}

    # Step 0: the gateway signs with the old key.
    assert classify_signed(old_sig, signing_keys=only_old) is Source.SIGNED
    assert classify_signed(new_sig, signing_keys=only_old) is Source.UNTRUSTED
    # Step 1: services know both keys; either signature is accepted.
    for signature in (old_sig, new_sig, old_kidless, new_kidless):
        assert classify_signed(signature, signing_keys=both) is Source.SIGNED
    # Step 4: the old key is removed; its signatures are rejected, with or without kid.
    assert classify_signed(new_sig, signing_keys=only_new) is Source.SIGNED
    assert classify_signed(new_kidless, signing_keys=only_new) is Source.SIGNED
    assert classify_signed(old_sig, signing_keys=only_new) is Source.UNTRUSTED
    assert classify_signed(old_kidless, signing_keys=only_new) is Source.UNTRUSTED


def test_kid_selects_one_key_only() -> None:
    # Signed with the old secret but labelled with the new kid.
    mislabelled = sign(OLD_KEY, "k2024", ALL_GRAY, NOW)
    assert classify_signed(mislabelled) is Source.UNTRUSTED


def test_str_secret_is_utf8() -> None:
    header = sign("clé", "k", ALL_GRAY, NOW)
    assert classify_signed(header, signing_keys={"k": "clé".encode("utf-8")}) is Source.SIGNED
    assert classify_signed(header, signing_keys={"k": "clé".encode("latin-1")}) is Source.UNTRUSTED


# --- precedence and enforce -----------------------------------------------------------


@pytest.mark.parametrize(
    ("remote_addr", "signature", "expected"),
    [
        pytest.param("10.0.0.2", GOOD, Source.TRUSTED, id="trusted network wins over signature"),
        pytest.param("10.0.0.2", "garbage", Source.TRUSTED, id="trusted network, bad signature"),
        pytest.param("10.0.0.2", None, Source.TRUSTED, id="trusted network, no signature"),
        pytest.param("203.0.113.7", GOOD, Source.SIGNED, id="untrusted peer, good signature"),
        pytest.param("203.0.113.7", "garbage", Source.UNTRUSTED, id="untrusted peer, bad signature"),
        pytest.param("203.0.113.7", None, Source.UNTRUSTED, id="untrusted peer, no signature"),
    ],
)
def test_precedence(remote_addr: str, signature: str | None, expected: Source) -> None:
    policy = signed_policy(trusted_networks=["10.0.0.0/8"])
    headers = dict(ALL_GRAY)
    if signature is not None:
        headers["X-Gray-Signature"] = signature
    assert policy.classify(make_environ(headers, REMOTE_ADDR=remote_addr)) is expected


OTHER_HEADERS = {"X-Api-Version": "^2", "X-Request-ID": "r-1", "Authorization": "Bearer x"}


@pytest.mark.parametrize(
    ("remote_addr", "signature", "expected"),
    [
        pytest.param("10.0.0.2", None, Source.TRUSTED, id="trusted keeps"),
        pytest.param("203.0.113.7", GOOD, Source.SIGNED, id="signed keeps"),
        pytest.param("203.0.113.7", None, Source.UNTRUSTED, id="untrusted strips"),
        pytest.param("203.0.113.7", sign("forged", "k2024", ALL_GRAY, NOW), Source.UNTRUSTED, id="forged strips"),
    ],
)
def test_enforce(remote_addr: str, signature: str | None, expected: Source) -> None:
    policy = signed_policy(trusted_networks=["10.0.0.0/8"])
    headers = {**ALL_GRAY, **OTHER_HEADERS}
    if signature is not None:
        headers["X-Gray-Signature"] = signature
    environ = make_environ(headers, REMOTE_ADDR=remote_addr)
    before = dict(environ)

    assert policy.enforce(environ) is expected
    assert environ[TRUST_ENVIRON_KEY] is expected
    del environ[TRUST_ENVIRON_KEY]
    if expected is Source.UNTRUSTED:
        removed = {*GRAY_HEADERS, "HTTP_X_GRAY_SIGNATURE"}
        assert environ == {k: v for k, v in before.items() if k not in removed}
    else:
        assert environ == before


def test_enforce_strips_headers_sent_in_any_case() -> None:
    environ = create_environ(
        "/", headers={"x-gray-id": "a", "X-TRAFFIC-COLOR": "canary", "x-Canary-Weight": "1.0"}
    )
    environ["REMOTE_ADDR"] = "203.0.113.7"
    assert {"HTTP_X_GRAY_ID", "HTTP_X_TRAFFIC_COLOR", "HTTP_X_CANARY_WEIGHT"} <= environ.keys()
    assert TrustPolicy().enforce(environ) is Source.UNTRUSTED
    assert not any(key in environ for key in GRAY_HEADERS)


def test_classify_does_not_modify_environ() -> None:
    environ = make_environ(ALL_GRAY, REMOTE_ADDR="203.0.113.7")
    before = dict(environ)
    assert signed_policy().classify(environ) is Source.UNTRUSTED
    assert environ == before


def test_one_policy_many_threads() -> None:
    policy = signed_policy(trusted_networks=["10.0.0.0/8"])
    cases = [
        ("10.0.0.2", None, Source.TRUSTED),
        ("203.0.113.7", GOOD, Source.SIGNED),
        ("203.0.113.7", None, Source.UNTRUSTED),
    ]
    mismatches: list[tuple[str, Source]] = []
    counts = {source: 0 for _, _, source in cases}
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def worker(index: int) -> None:
        remote_addr, signature, expected = cases[index % len(cases)]
        barrier.wait()
        for _ in range(200):
            headers = dict(ALL_GRAY)
            if signature is not None:
                headers["X-Gray-Signature"] = signature
            environ = make_environ(headers, REMOTE_ADDR=remote_addr)
            got = policy.enforce(environ)
            with lock:
                counts[got] += 1
                if got is not expected or (("HTTP_X_GRAY_ID" in environ) != (got is not Source.UNTRUSTED)):
                    mismatches.append((remote_addr, got))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []
    assert counts == {Source.TRUSTED: 800, Source.SIGNED: 800, Source.UNTRUSTED: 800}


# --- worked example and canonical format ------------------------------------------------

EXAMPLE_CANONICAL = (
    b"graywsgi-v1\n"
    b"1700000000\n"
    b"x-gray-id:user-42\n"
    b"x-traffic-color:\n"
    b"x-canary-weight:\n"
    b"x-version:2.1.0\n"
    b"x-env:\n"
    b"x-canary-id:\n"
)
EXAMPLE_DIGEST = "dc0485b67d825c0ed4707501cf06a24f1d88fff3ae54d839c9e09065f25847d9"


def test_worked_example_matches_an_independent_hmac() -> None:
    independent = hmac.new(b"gateway-secret-2024", EXAMPLE_CANONICAL, hashlib.sha256).hexdigest()
    assert independent == EXAMPLE_DIGEST
    headers = {"X-Gray-ID": "user-42", "X-Version": "2.1.0"}
    assert canonical_string(1700000000, headers) == EXAMPLE_CANONICAL
    signature = sign("gateway-secret-2024", "k2024", headers, 1700000000)
    assert signature == f"t=1700000000,kid=k2024,v1={EXAMPLE_DIGEST}"
    assert signature in (trust.__doc__ or "")


def test_every_gray_header_has_its_line() -> None:
    assert canonical_string(5, ALL_GRAY) == (
        b"graywsgi-v1\n5\n"
        b"x-gray-id:user-42\n"
        b"x-traffic-color:canary\n"
        b"x-canary-weight:0.25\n"
        b"x-version:2.1.0\n"
        b"x-env:prod\n"
        b"x-canary-id:c-7\n"
    )
    assert canonical_string(0, {}).count(b"\n") == 2 + len(GRAY_HEADERS)


@pytest.mark.parametrize(
    ("values", "line"),
    [
        pytest.param({"x-GRAY-id": "a"}, b"x-gray-id:a\n", id="name case-insensitive"),
        pytest.param({"X-Gray-ID": " \ta b\t "}, b"x-gray-id:a b\n", id="value trimmed of SP/HTAB"),
        pytest.param({"X-Gray-ID": b"\xff\x80"}, b"x-gray-id:\xff\x80\n", id="bytes used as sent"),
        pytest.param({"X-Gray-ID": "é"}, b"x-gray-id:\xc3\xa9\n", id="str encoded as UTF-8"),
        pytest.param({"X-Gray-ID": ""}, b"x-gray-id:\n", id="empty equals absent"),
    ],
)
def test_canonical_values(values: dict[str, str | bytes], line: bytes) -> None:
    assert line in canonical_string(1, values)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda: canonical_string(1, {"X-Api-Version": "1"}), ValueError, "not a gray header", id="not a gray header"),
        pytest.param(lambda: canonical_string(1, {"X-Gray-Signature": "1"}), ValueError, "not a gray header", id="signature header"),
        pytest.param(lambda: canonical_string(1, {"X-Gray-ID": "a", "x-gray-id": "b"}), ValueError, "twice", id="name twice"),
        pytest.param(lambda: canonical_string(1, {"X-Gray-ID": "a\nx-env:prod"}), ValueError, "field value", id="LF in value"),
        pytest.param(lambda: canonical_string(1, {"X-Gray-ID": "a\x00"}), ValueError, "field value", id="NUL in value"),
        pytest.param(lambda: canonical_string(-1, {}), ValueError, "negative", id="negative time"),
        pytest.param(lambda: canonical_string(1.5, {}), TypeError, "int", id="float time"),  # type: ignore[arg-type]
        pytest.param(lambda: canonical_string(True, {}), TypeError, "int", id="bool time"),
        pytest.param(lambda: sign("", "k", {}, 1), ValueError, "empty", id="empty key"),
        pytest.param(lambda: sign("s", "k 1", {}, 1), ValueError, "token", id="kid with space"),
        pytest.param(lambda: sign("s", "", {}, 1), ValueError, "token", id="empty kid"),
        pytest.param(lambda: sign("s", "k,1", {}, 1), ValueError, "token", id="kid with comma"),
    ],
)
def test_signing_errors(call: t.Callable[[], object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


# --- construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"trusted_networks": ["10.0.0.300"]}, "'10.0.0.300'", id="bad v4 address"),
        pytest.param({"trusted_networks": ["10.0.0.0/8", "10.0.0.1/8"]}, "'10.0.0.1/8'", id="host bits set"),
        pytest.param({"trusted_networks": ["10.0.0.0/33"]}, "'10.0.0.0/33'", id="prefix too long"),
        pytest.param({"trusted_networks": ["2001:db8::/129"]}, "'2001:db8::/129'", id="v6 prefix too long"),
        pytest.param({"trusted_networks": ["gateway.internal"]}, "'gateway.internal'", id="host name"),
        pytest.param({"trusted_networks": [""]}, "''", id="empty entry"),
        pytest.param({"trusted_networks": [" 10.0.0.1"]}, "' 10.0.0.1'", id="whitespace"),
        pytest.param({"trusted_networks": [42]}, "42", id="not a string"),
        pytest.param({"trusted_networks": "10.0.0.0/8"}, "not one string", id="a string, not a list"),
        pytest.param({"signing_keys": {"k": ""}}, "'k' has an empty secret", id="empty str secret"),
        pytest.param({"signing_keys": {"k": b""}}, "'k' has an empty secret", id="empty bytes secret"),
        pytest.param({"signing_keys": {"k": 123}}, "'k'", id="secret not str or bytes"),
        pytest.param({"signing_keys": {"key 1": "s"}}, "'key 1'", id="kid with space"),
        pytest.param({"signing_keys": {"k,1": "s"}}, "'k,1'", id="kid with comma"),
        pytest.param({"signing_keys": {"k=1": "s"}}, "'k=1'", id="kid with equals"),
        pytest.param({"signing_keys": {"": "s"}}, "''", id="empty kid"),
        pytest.param({"signing_keys": {"kлюч": "s"}}, "'kлюч'", id="non-ascii kid"),
        pytest.param({"signing_keys": [("k", "s")]}, "mapping", id="keys not a mapping"),
        pytest.param({"signature_header": "X Gray Sig"}, "'X Gray Sig'", id="bad header name"),
        pytest.param({"signature_header": ""}, "''", id="empty header name"),
        pytest.param({"signature_header": "x-gray-id"}, "gray header", id="signature header is a gray header"),
        pytest.param({"max_skew": 0}, "max_skew", id="zero skew"),
        pytest.param({"max_skew": -5.0}, "max_skew", id="negative skew"),
        pytest.param({"max_skew": float("nan")}, "max_skew", id="NaN skew"),
        pytest.param({"max_skew": float("inf")}, "max_skew", id="infinite skew"),
        pytest.param({"max_skew": True}, "max_skew", id="bool skew"),
        pytest.param({"max_skew": "300"}, "max_skew", id="string skew"),
        pytest.param({"clock": 1700000000}, "clock", id="clock not callable"),
    ],
)
def test_construction_errors(options: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        TrustPolicy(**options)
    assert message in str(info.value)


def test_construction_accepts_network_objects_and_int_skew() -> None:
    policy = TrustPolicy(
        trusted_networks=[ipaddress.ip_network("10.0.0.0/8"), "::1"],  # type: ignore[list-item]
        max_skew=60,
    )
    assert policy.max_skew == 60.0
    assert policy.trusted_networks[1] == ipaddress.IPv6Network("::1/128")


def test_repr_shows_key_ids_not_secrets() -> None:
    text = repr(signed_policy(trusted_networks=["10.0.0.0/8"]))
    assert "k2023" in text and "k2024" in text and "10.0.0.0/8" in text
    assert OLD_KEY not in text and "new-secret" not in text
