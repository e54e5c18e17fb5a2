"""Tests of graywsgi.httputil.trust: TrustPolicy (verdicts, enforce, options, rotation)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import threading
import typing as t

import pytest
from werkzeug.test import create_environ

from graywsgi.httputil import trust
from graywsgi.core.context import Source
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.gray_headers import GRAY_HEADERS
from graywsgi.httputil.signing import canonical_string, sign
from graywsgi.httputil.trust import TRUST_ENVIRON_KEY, TrustPolicy
from tests.httputil.conftest import (
    ALL_GRAY,
    GOOD,
    GOOD_DIGEST,
    NEW_KEY,
    NOW,
    OLD_KEY,
    classify_signed,
    make_environ,
    signed_policy,
)


def test_nothing_configured_trusts_nobody() -> None:
    policy = TrustPolicy()
    header = sign(OLD_KEY, "k2023", ALL_GRAY, NOW)
    environ = make_environ({**ALL_GRAY, "X-Gray-Signature": header}, REMOTE_ADDR="127.0.0.1")
    assert policy.classify(environ) is Source.UNTRUSTED
    assert policy.trusted_networks == ()
    assert policy.key_ids == ()


# --- signatures -----------------------------------------------------------------


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


# --- worked example ------------------------------------------------

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
