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

Gray headers
------------

=====================  ===========================  =====================
Header                 WSGI key                     Canonical line name
=====================  ===========================  =====================
``X-Gray-ID``          ``HTTP_X_GRAY_ID``           ``x-gray-id``
``X-Traffic-Color``    ``HTTP_X_TRAFFIC_COLOR``     ``x-traffic-color``
``X-Canary-Weight``    ``HTTP_X_CANARY_WEIGHT``     ``x-canary-weight``
``X-Version``          ``HTTP_X_VERSION``           ``x-version``
``X-Env``              ``HTTP_X_ENV``               ``x-env``
``X-Canary-ID``        ``HTTP_X_CANARY_ID``         ``x-canary-id``
=====================  ===========================  =====================

``X-Canary-Weight`` (a 0-1 share of traffic) follows the same rule as the
others: a client that could set it would widen the canary for itself.

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

Which address is the peer
-------------------------

The peer is ``environ["REMOTE_ADDR"]`` -- the address the WSGI server
accepted the connection from. ``X-Forwarded-For`` and ``Forwarded`` are never
consulted: every hop in them but the last could have been written by the
client.

When werkzeug's :class:`~werkzeug.middleware.proxy_fix.ProxyFix` runs
*before* this layer, it has already replaced ``REMOTE_ADDR`` with the
client's address and kept the real peer in
``environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"]``; the policy uses that
value whenever the key is present (and trusts nobody if it is unusable).
Use one ``ProxyFix(x_for=N)`` rather than stacking several: each one
overwrites the saved original with what the previous one wrote.

A missing, empty or unparsable ``REMOTE_ADDR`` (a Unix socket, a
``host:port`` string) is simply not trusted. IPv4 and IPv6 are both
supported; an IPv4-mapped IPv6 peer such as ``::ffff:10.0.0.1`` matches the
IPv4 network ``10.0.0.0/8``, and a configured network inside
``::ffff:0:0/96`` is stored as the IPv4 network it maps.

Behind one proxy
~~~~~~~~~~~~~~~~

``client -> nginx (10.20.0.5) -> gunicorn``: trust the proxy, and make it
replace or remove every gray header the client sent::

    TrustPolicy(trusted_networks=["10.20.0.5"])      # or its subnet

    # nginx: override the client's values (an empty value removes a header)
    proxy_set_header X-Gray-ID       $gray_id;
    proxy_set_header X-Traffic-Color "";
    proxy_set_header X-Canary-Weight "";
    ...

Behind two proxies
~~~~~~~~~~~~~~~~~~

``client -> CDN / edge gateway -> internal load balancer (10.30.0.0/24) ->
gunicorn``: the peer is the load balancer, so list *its* network. Trusting
it means trusting whatever it forwards: the edge must strip client gray
headers and the load balancer must accept traffic only from the edge. If
that cannot be guaranteed -- the middle hop is shared, or the edge is far
away -- do not trust networks at all and have the edge *sign* instead; a
signature survives any number of hops.

Signed headers: what a gateway does
-----------------------------------

1. Remove the client's gray headers and signature header (all spellings).
2. Decide the gray header values and set them (or leave them absent).
3. Build the canonical string below and compute HMAC-SHA256 over it with
   the current key.
4. Send ``X-Gray-Signature: t=<unix seconds>,kid=<key id>,v1=<hex digest>``.

Signature header value
~~~~~~~~~~~~~~~~~~~~~~

A comma-separated list of ``name=value`` parameters, optional spaces or tabs
around each comma, in any order:

- ``t`` (required): the signing time in whole Unix seconds, decimal, no
  sign and no leading zeros (``0`` itself is allowed);
- ``kid`` (optional): the key id (an RFC 9110 token); without it every
  configured key is tried;
- ``v1`` (required): the HMAC-SHA256 digest, 64 hex digits (either case).

Other parameters are ignored (room for a future ``v2``); a parameter given
twice, an empty item, a value longer than 1024 characters or anything else
outside this grammar makes the signature invalid. Parameter names are
case-sensitive.

Canonical string
~~~~~~~~~~~~~~~~

The bytes the HMAC covers (:func:`canonical_string`)::

    "graywsgi-v1" LF
    <t, exactly as in the t parameter> LF
    "x-gray-id:"        <value> LF
    "x-traffic-color:"  <value> LF
    "x-canary-weight:"  <value> LF
    "x-version:"        <value> LF
    "x-env:"            <value> LF
    "x-canary-id:"      <value> LF

LF is the byte 0x0A. The six lines are always present, in this order, with
an empty value for a header that is absent; so a gray header added to the
request after signing breaks the signature. Each value is the header's bytes
as sent, with leading and trailing spaces and tabs removed; it must be an
RFC 9110 field value (no CR, LF or other control bytes), which keeps the
lines unambiguous. Send non-ASCII values as UTF-8 (:func:`sign` encodes
``str`` that way); a WSGI server hands them to the service byte for byte.
An empty header is the same as an absent one.

Worked example
~~~~~~~~~~~~~~

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

import functools
import hmac
import ipaddress
import logging
import math
import re
import time
import types
import typing as t

from graywsgi.core.context import Source
from graywsgi.errors import ConfigurationError
from graywsgi.httputil.headers import valid_field_name, valid_field_value

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

#: WSGI environ keys of the gray headers, in canonical-string order.
GRAY_HEADERS: tuple[str, ...] = (
    "HTTP_X_GRAY_ID",
    "HTTP_X_TRAFFIC_COLOR",
    "HTTP_X_CANARY_WEIGHT",
    "HTTP_X_VERSION",
    "HTTP_X_ENV",
    "HTTP_X_CANARY_ID",
)

#: Lower-case HTTP names of the gray headers, in the same order.
GRAY_HEADER_NAMES: tuple[str, ...] = tuple(
    key[len("HTTP_") :].lower().replace("_", "-") for key in GRAY_HEADERS
)

#: environ key where :meth:`TrustPolicy.enforce` leaves its verdict.
TRUST_ENVIRON_KEY = "graywsgi.trust"

#: Longest signature header value considered; longer ones are invalid.
MAX_SIGNATURE_LENGTH = 1024

Network = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_PROXY_FIX_ORIG = "werkzeug.proxy_fix.orig"
_CANONICAL_VERSION = b"graywsgi-v1\n"
_LINE_PREFIXES = tuple(f"{name}:".encode("ascii") for name in GRAY_HEADER_NAMES)
_NAME_INDEX = {name: index for index, name in enumerate(GRAY_HEADER_NAMES)}
_GRAY_ITEMS = tuple(zip(GRAY_HEADERS, _LINE_PREFIXES))
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# One signature parameter, with the optional whitespace around the comma
# that separated it. The value stops at a comma (the split) and excludes
# whitespace and controls.
_PARAM = re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)=([\x21-\x7e]*)[ \t]*")
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,15}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# Longest textual IP address worth parsing (IPv6 with an IPv4 tail and a
# zone id); anything longer is not an address.
_MAX_ADDRESS_LENGTH = 64


def _canonical(timestamp: bytes, values: t.Sequence[bytes]) -> bytes:
    parts = [_CANONICAL_VERSION, timestamp, b"\n"]
    for prefix, value in zip(_LINE_PREFIXES, values):
        parts += (prefix, value, b"\n")
    return b"".join(parts)


def _check_timestamp(timestamp: int) -> bytes:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int (Unix seconds), got {timestamp!r}")
    if timestamp < 0:
        raise ValueError(f"timestamp must not be negative, got {timestamp}")
    return str(timestamp).encode("ascii")


def _canonical_values(values: t.Mapping[str, str | bytes]) -> list[bytes]:
    ordered = [b""] * len(GRAY_HEADER_NAMES)
    seen: set[int] = set()
    for name, value in values.items():
        index = _NAME_INDEX.get(name.lower()) if name.isascii() else None
        if index is None:
            raise ValueError(
                f"{name!r} is not a gray header; signable headers: "
                f"{', '.join(GRAY_HEADER_NAMES)}"
            )
        if index in seen:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(index)
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        raw = raw.strip(b" \t")
        if not valid_field_value(raw):
            raise ValueError(
                f"value of {name!r} is not an RFC 9110 field value (control characters?)"
            )
        ordered[index] = raw
    return ordered


def canonical_string(timestamp: int, values: t.Mapping[str, str | bytes]) -> bytes:
    """Return the bytes a gateway signs (see "Canonical string" above).

    :param timestamp: the signing time, whole Unix seconds (``t=``).
    :param values: gray header values by HTTP name, case-insensitive
        (``{"X-Gray-ID": "u1"}``). Absent headers are signed as empty.
        ``str`` values are encoded as UTF-8, ``bytes`` are used as they are;
        both are trimmed of surrounding spaces and tabs.
    :return: ``graywsgi-v1\\n<t>\\n`` and one ``<name>:<value>\\n`` line per
        gray header, in :data:`GRAY_HEADER_NAMES` order.
    :raises ValueError: for a name that is not a gray header, a header
        given twice, a value with control characters, or a negative time.
    :raises TypeError: if ``timestamp`` is not an int.
    """
    return _canonical(_check_timestamp(timestamp), _canonical_values(values))


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        return secret.encode("utf-8")
    if isinstance(secret, (bytes, bytearray, memoryview)):
        return bytes(secret)
    raise TypeError(f"a secret must be str or bytes, got {type(secret).__name__}")


def sign(
    key: str | bytes,
    key_id: str,
    headers: t.Mapping[str, str | bytes],
    timestamp: int,
) -> str:
    """Return the signature header value a gateway sends with ``headers``.

    >>> sign(b"s3cret", "k1", {"x-gray-id": "u1"}, 1700000000)
    't=1700000000,kid=k1,v1=4c4347946586c34997aca9803757fa6f6b9c61bbccf57097b2e74564acf57e44'

    :param key: the shared secret (``str`` is encoded as UTF-8).
    :param key_id: the id the services know the key by (an RFC 9110 token).
    :param headers: the gray headers the request will carry, by HTTP name
        (case-insensitive), e.g. ``{"X-Gray-ID": "u1"}``; see
        :func:`canonical_string`.
    :param timestamp: the signing time, whole Unix seconds
        (``int(time.time())``).
    :return: ``t=<timestamp>,kid=<key_id>,v1=<lower-case hex HMAC-SHA256>``.
    :raises ValueError: for an empty key, an invalid key id, or headers
        :func:`canonical_string` refuses.
    """
    secret = _secret_bytes(key)
    if not secret:
        raise ValueError("the signing key is empty")
    if not isinstance(key_id, str) or _TOKEN.fullmatch(key_id) is None:
        raise ValueError(f"key id {key_id!r} is not an RFC 9110 token")
    stamp = _check_timestamp(timestamp)
    digest = hmac.digest(secret, _canonical(stamp, _canonical_values(headers)), "sha256")
    return f"t={stamp.decode('ascii')},kid={key_id},v1={digest.hex()}"


def _parse_signature(value: str) -> tuple[str, str | None, bytes] | None:
    """``(t, kid, digest)`` from a signature header value, or ``None``."""
    params: dict[str, str] = {}
    for item in value.split(","):
        match = _PARAM.fullmatch(item)
        if match is None:
            return None
        name, param = match.groups()
        if name in params:
            return None
        params[name] = param
    timestamp = params.get("t")
    digest = params.get("v1")
    kid = params.get("kid")
    if timestamp is None or _TIMESTAMP.fullmatch(timestamp) is None:
        return None
    if digest is None or _DIGEST.fullmatch(digest) is None:
        return None
    if kid is not None and _TOKEN.fullmatch(kid) is None:
        return None
    return timestamp, kid, bytes.fromhex(digest)


def _wsgi_key(header_name: str) -> str:
    key = header_name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return f"HTTP_{key}"


def _parse_network(entry: object) -> Network:
    if not isinstance(entry, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        raise ConfigurationError(
            f"trusted_networks entry {entry!r} must be a CIDR string or an address"
        )
    try:
        network = ipaddress.ip_network(entry)
    except ValueError as exc:
        raise ConfigurationError(
            f"trusted_networks entry {entry!r} is not a network or address: {exc}"
        ) from None
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= 96
        and network.subnet_of(_IPV4_MAPPED)
    ):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


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

        Untrusted, every key of :data:`GRAY_HEADERS` and the signature
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


def _peer_address(environ: WSGIEnvironment) -> object:
    """The TCP peer: ProxyFix's saved original if it ran, else REMOTE_ADDR."""
    orig = environ.get(_PROXY_FIX_ORIG)
    if orig is None:
        return environ.get("REMOTE_ADDR")
    if isinstance(orig, t.Mapping):
        return orig.get("REMOTE_ADDR")
    return None


def _peer_matcher(
    v4: tuple[ipaddress.IPv4Network, ...], v6: tuple[ipaddress.IPv6Network, ...]
) -> t.Callable[[str], bool]:
    """A cached ``address -> in a trusted network`` function.

    Parsing an address costs microseconds, and a service sees the same few
    proxy addresses over and over; the cache is bounded, so a flood of
    distinct peers only evicts entries.
    """

    @functools.lru_cache(maxsize=1024)
    def peer_trusted(address: str) -> bool:
        if len(address) > _MAX_ADDRESS_LENGTH:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv4Address):
            return any(ip in network for network in v4)
        mapped = ip.ipv4_mapped
        if mapped is not None and any(mapped in network for network in v4):
            return True
        return any(ip in network for network in v6)

    return peer_trusted
