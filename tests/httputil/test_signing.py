"""Tests of graywsgi.httputil.signing: the signature header, the canonical string, sign()."""

from __future__ import annotations

import typing as t

import pytest

from graywsgi.core.context import Source
from graywsgi.httputil.gray_headers import GRAY_HEADERS
from graywsgi.httputil.signing import canonical_string, sign
from tests.httputil.conftest import (
    ALL_GRAY,
    GOOD,
    GOOD_DIGEST,
    NEW_KEY,
    NOW,
    OLD_KEY,
    classify_signed,
)

# --- signatures -----------------------------------------------------------------

OTHER_TIME_DIGEST = sign(NEW_KEY, "k2024", ALL_GRAY, NOW - 301).rpartition("v1=")[2]


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


def test_str_secret_is_utf8() -> None:
    header = sign("clé", "k", ALL_GRAY, NOW)
    assert classify_signed(header, signing_keys={"k": "clé".encode("utf-8")}) is Source.SIGNED
    assert classify_signed(header, signing_keys={"k": "clé".encode("latin-1")}) is Source.UNTRUSTED


# --- canonical format ------------------------------------------------


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
