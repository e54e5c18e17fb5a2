"""
Trust
=====

Gray headers choose who gets unreleased code, so graywsgi honours them only
from a source it trusts: a proxy in a configured network (judged by the
address of the TCP peer), or a gateway that signs them with HMAC-SHA256.
From anyone else they are removed from the WSGI environ before the
application -- and every later gray layer -- sees them.

.. code-block:: python

    from graywsgi.httputil.trust import TrustPolicy

    policy = TrustPolicy(trusted_networks=["10.20.0.0/16"],
                         signing_keys={"k2024": os.environ["GRAY_KEY_2024"]})

    def trust_boundary(environ, start_response):
        policy.enforce(environ)          # strips untrusted gray headers
        return extraction(environ, start_response)

:meth:`TrustPolicy.enforce` must run before anything reads a gray header
(before :class:`~graywsgi.layers.extraction.Extraction`). It also leaves its verdict
in ``environ["graywsgi.trust"]`` (a :class:`~graywsgi.core.context.Source`).

The gray headers are listed in :mod:`graywsgi.httputil.gray_headers`. The
policy trusts a request in one of two ways, each in a module of its own:
:mod:`graywsgi.httputil.trusted_networks` (the peer address, and how to
deploy behind proxies) and :mod:`graywsgi.httputil.signing` (what a gateway
signs, and how). This module holds the policy itself.

Threat model
------------

*Protected against:* any client that can reach the service and sends gray
headers (or a forged signature header) to pick a cluster, raise its canary
weight or pose as another user's gray id. Its gray headers are stripped;
the split then falls back to a key the service owns (a cookie, a user id).
Header names are compared as WSGI keys, so ``X-Gray-ID``, ``x-gray-id`` and
``X_Gray_ID`` (which some servers fold into the same key) are all covered.
A malformed, oversized, expired or wrongly signed signature header makes
the request untrusted; it never raises and never turns into a 500.

*Assumed:* the trusted proxies remove every client-sent gray header
(including underscore spellings) and set their own; the signing keys are
secret and shared only with the gateway; the clocks of the gateway and
the service agree to within ``max_skew``.

*Not covered:* a signature binds the gray header values and a time, not the
request line or body. Whoever can read a signed request (between the gateway
and the service) can replay its gray headers on other requests until the
timestamp leaves the skew window. Keep that hop on TLS or a private network
and ``max_skew`` short. Trust only governs *headers*: turn off the
``?gray_id=`` query fallback of :class:`~graywsgi.layers.extraction.Extraction`
(``query_fallback=None``) where the gray id must come from a trusted source.

Worked example
--------------

A request signed as in :mod:`graywsgi.httputil.signing`, then checked.

Key id ``k2024``, secret ``gateway-secret-2024`` (UTF-8), time
``1700000000``, and two headers, ``X-Gray-ID: user-42`` and
``X-Version: 2.1.0``:

>>> headers = {"X-Gray-ID": "user-42", "X-Version": "2.1.0"}
>>> print(canonical_string(1700000000, headers).decode(), end="")
graywsgi-v1
1700000000
x-gray-id:user-42
x-traffic-color:
x-canary-weight:
x-version:2.1.0
x-env:
x-canary-id:
>>> signature = sign("gateway-secret-2024", "k2024", headers, 1700000000)
>>> signature
't=1700000000,kid=k2024,v1=dc0485b67d825c0ed4707501cf06a24f1d88fff3ae54d839c9e09065f25847d9'

A service holding that key, with its clock at ``1700000100`` (100 s later,
inside the default 300 s window), accepts the request; without the
signature it strips the headers:

>>> from werkzeug.test import create_environ
>>> policy = TrustPolicy(signing_keys={"k2024": "gateway-secret-2024"},
...                      clock=lambda: 1700000100.0)
>>> environ = create_environ("/", headers={**headers, "X-Gray-Signature": signature})
>>> policy.enforce(environ), environ["HTTP_X_GRAY_ID"]
(<Source.SIGNED: 'signed'>, 'user-42')
>>> environ = create_environ("/", headers=headers)
>>> policy.enforce(environ), "HTTP_X_GRAY_ID" in environ
(<Source.UNTRUSTED: 'untrusted'>, False)

The same in Go: ``mac := hmac.New(sha256.New, key); mac.Write(canonical);
hex.EncodeToString(mac.Sum(nil))``. Any gateway that can compute
HMAC-SHA256 can sign (an nginx njs or Lua handler, an Envoy Lua or Wasm
filter, an ext_proc service).

Key rotation
------------

Keys are named by their id, and the service accepts every key it is
configured with, so a key is replaced without a flag day:

1. Add the new key next to the old one on every service instance
   (``{"k2024": old, "k2025": new}``) and roll that out.
2. Switch the gateway to sign with ``kid=k2025``.
3. Wait at least ``max_skew`` (signatures made with the old key expire).
4. Remove ``k2024`` from the services. Its signatures are now rejected.

A signature without ``kid`` is checked against every configured key; send
``kid`` anyway, it costs one HMAC instead of one per key.

Clock skew
----------

A signature is accepted while ``|now - t| <= max_skew`` seconds (default
300), in both directions: a gateway whose clock runs ahead is tolerated as
much as one that runs behind. The window bounds both clock disagreement and
how long a captured signature can be replayed; keep the clocks on NTP and
the window as small as they allow.

Performance
-----------

Networks are parsed once, at construction. Per request the peer address is
looked up in a bounded cache of recent peers (parsing an address costs
microseconds; a cache hit costs a dict lookup), then matched against the
few configured networks. A signature costs one HMAC-SHA256 over about 120
bytes. With nothing configured, :meth:`TrustPolicy.classify` returns at
once.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
import types
import typing as t

from graywsgi.core.context import Source
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.gray_headers import GRAY_HEADER_NAMES, GRAY_HEADERS
from graywsgi.httputil.headers import valid_field_name, valid_field_value
from graywsgi.httputil.signing import (
    _GRAY_ITEMS,
    _TOKEN,
    MAX_SIGNATURE_LENGTH,
    _canonical,
    _parse_signature,
    _secret_bytes,
    canonical_string,
    sign,
)
from graywsgi.httputil.trusted_networks import Network, _parse_network, _peer_address, _peer_matcher

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "TrustPolicy",
    "sign",
    "canonical_string",
    "GRAY_HEADERS",
    "GRAY_HEADER_NAMES",
    "TRUST_ENVIRON_KEY",
    "MAX_SIGNATURE_LENGTH",
]

logger = logging.getLogger("graywsgi.trust")

#: environ key where :meth:`TrustPolicy.enforce` leaves its verdict.
TRUST_ENVIRON_KEY = "graywsgi.trust"


def _wsgi_key(header_name: str) -> str:
    key = header_name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return f"HTTP_{key}"


class TrustPolicy:
    """Decide whether a request's gray headers may be honoured.

    >>> policy = TrustPolicy(trusted_networks=["10.0.0.0/8", "fd00::/8"])
    >>> policy.classify({"REMOTE_ADDR": "10.1.2.3"})
    <Source.TRUSTED: 'trusted'>
    >>> environ = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_GRAY_ID": "me"}
    >>> policy.enforce(environ), "HTTP_X_GRAY_ID" in environ
    (<Source.UNTRUSTED: 'untrusted'>, False)

    The policy holds no per-request state; one instance serves every
    thread. Nothing is read from disk or network when it is built.

    :param trusted_networks: networks of the proxies whose gray headers are
        honoured: CIDR strings (``"10.0.0.0/8"``, ``"fd00::/8"``) or single
        addresses (``"10.0.0.5"``), IPv4 or IPv6.
    :param signing_keys: key id -> shared secret for gateway signatures;
        ``str`` secrets are encoded as UTF-8. Configure several ids at once
        to rotate keys.
    :param signature_header: the HTTP name of the signature header.
    :param max_skew: how far, in seconds, a signature's time may be from
        the service's clock, either way (default 300).
    :param clock: returns the current Unix time in seconds (for tests).
    :raises ConfigurationError: for an invalid network, an empty secret,
        a key id that is not an RFC 9110 token, an invalid or gray
        signature header name, or a ``max_skew`` that is not a positive
        number.
    """

    #: The trusted networks, parsed, in the order configured.
    trusted_networks: tuple[Network, ...]

    def __init__(
        self,
        *,
        trusted_networks: t.Iterable[str] = (),
        signing_keys: t.Mapping[str, str | bytes] = types.MappingProxyType({}),
        signature_header: str = "X-Gray-Signature",
        max_skew: float = 300.0,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        if isinstance(trusted_networks, (str, bytes)):
            raise ConfigurationError(
                f"trusted_networks must be a list of networks, not one string: "
                f"use [{trusted_networks!r}]"
            )
        self.trusted_networks = tuple(_parse_network(entry) for entry in trusted_networks)

        if not isinstance(signing_keys, t.Mapping):
            raise ConfigurationError("signing_keys must be a mapping of key id -> secret")
        keys: dict[str, bytes] = {}
        for key_id, secret in signing_keys.items():
            if not isinstance(key_id, str) or _TOKEN.fullmatch(key_id) is None:
                raise ConfigurationError(
                    f"signing key id {key_id!r} must be an RFC 9110 token "
                    f"(letters, digits and !#$%&'*+-.^_`|~)"
                )
            try:
                secret_bytes = _secret_bytes(secret)
            except TypeError as exc:
                raise ConfigurationError(f"signing key {key_id!r}: {exc}") from None
            if not secret_bytes:
                raise ConfigurationError(f"signing key {key_id!r} has an empty secret")
            keys[key_id] = secret_bytes

        if not isinstance(signature_header, str) or not valid_field_name(signature_header):
            raise ConfigurationError(
                f"signature_header {signature_header!r} is not a valid header name"
            )
        signature_key = _wsgi_key(signature_header)
        if signature_key in GRAY_HEADERS:
            raise ConfigurationError(
                f"signature_header {signature_header!r} is a gray header itself"
            )

        if (
            isinstance(max_skew, bool)
            or not isinstance(max_skew, (int, float))
            or not math.isfinite(max_skew)
            or max_skew <= 0
        ):
            raise ConfigurationError(
                f"max_skew must be a positive number of seconds, got {max_skew!r}"
            )
        if not callable(clock):
            raise ConfigurationError(f"clock {clock!r} is not callable")

        self.signature_header = signature_header
        self.max_skew = float(max_skew)
        self._signature_key = signature_key
        self._keys: t.Mapping[str, bytes] = types.MappingProxyType(keys)
        self._all_keys = tuple(keys.values())
        self._clock = clock
        self._strip_keys = (*GRAY_HEADERS, signature_key)
        v4 = tuple(n for n in self.trusted_networks if isinstance(n, ipaddress.IPv4Network))
        v6 = tuple(n for n in self.trusted_networks if isinstance(n, ipaddress.IPv6Network))
        self._peer_trusted = _peer_matcher(v4, v6)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The configured signing key ids (never the secrets)."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        networks = [str(network) for network in self.trusted_networks]
        return (
            f"{type(self).__name__}(trusted_networks={networks!r}, "
            f"key_ids={list(self._keys)!r}, signature_header={self.signature_header!r}, "
            f"max_skew={self.max_skew!r})"
        )

    def classify(self, environ: WSGIEnvironment) -> Source:
        """Say where this request's gray headers come from. Never raises.

        :param environ: the WSGI environ (not modified).
        :return: :attr:`Source.TRUSTED` if the peer is in a trusted network,
            else :attr:`Source.SIGNED` if the signature header is valid,
            else :attr:`Source.UNTRUSTED`.
        """
        try:
            if self.trusted_networks:
                address = _peer_address(environ)
                if isinstance(address, str) and self._peer_trusted(address):
                    return Source.TRUSTED
            if self._all_keys and self._signature_key in environ:
                problem = self._signature_problem(environ)
                if not problem:
                    return Source.SIGNED
                logger.debug("graywsgi trust: gray signature rejected: %s", problem)
        except Exception:
            logger.exception("graywsgi trust: classification failed; request untrusted")
        return Source.UNTRUSTED

    def enforce(self, environ: WSGIEnvironment) -> Source:
        """Classify the request and strip its gray headers if untrusted.

        Untrusted, every key of
        :data:`~graywsgi.httputil.gray_headers.GRAY_HEADERS` and the signature
        header are deleted from ``environ``. The verdict is also stored in
        ``environ["graywsgi.trust"]``.

        :param environ: the WSGI environ, modified in place.
        :return: the classification, as :meth:`classify`.
        """
        source = self.classify(environ)
        if source is Source.UNTRUSTED:
            for key in self._strip_keys:
                environ.pop(key, None)
        environ[TRUST_ENVIRON_KEY] = source
        return source

    def _signature_problem(self, environ: WSGIEnvironment) -> str:
        """Why the signature is not valid, or ``""`` if it is."""
        header = environ.get(self._signature_key)
        if header.__class__ is not str:
            return "no signature header"
        if len(header) > MAX_SIGNATURE_LENGTH:
            return f"signature header longer than {MAX_SIGNATURE_LENGTH} characters"
        parsed = _parse_signature(header)
        if parsed is None:
            return "malformed signature header"
        timestamp, kid, digest = parsed
        if kid is None:
            secrets = self._all_keys
        else:
            secret = self._keys.get(kid)
            if secret is None:
                return f"unknown key id {kid!r}"
            secrets = (secret,)
        skew = float(self._clock()) - int(timestamp)
        if not abs(skew) <= self.max_skew:  # also rejects NaN
            return f"signed {skew:.0f} s from now, outside the {self.max_skew:g} s window"
        values: list[bytes] = []
        for key, _ in _GRAY_ITEMS:
            value = environ.get(key)
            if value is None:
                values.append(b"")
                continue
            if value.__class__ is not str:
                return f"{key} is not a str"
            value = value.strip(" \t")
            try:
                raw = value.encode("latin-1")
            except UnicodeEncodeError:
                return f"{key} holds characters that cannot come off the wire"
            if not (value.isascii() and value.isprintable()) and not valid_field_value(raw):
                return f"{key} is not an RFC 9110 field value"
            values.append(raw)
        canonical = _canonical(timestamp.encode("ascii"), values)
        for secret in secrets:
            if hmac.compare_digest(hmac.digest(secret, canonical, "sha256"), digest):
                return ""
        return "signature does not match"
