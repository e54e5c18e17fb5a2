"""
Trusted networks
================

The first way to earn trust: the request comes from a proxy in a configured
network, judged by the address of the TCP peer. This module parses the
``trusted_networks`` of :class:`~graywsgi.httputil.trust.TrustPolicy`, finds
the peer address in the WSGI environ and matches it against those networks.
Its siblings: :mod:`graywsgi.httputil.trust` (the policy) and
:mod:`graywsgi.httputil.signing` (trust by gateway signature).

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
"""

from __future__ import annotations

import functools
import ipaddress
import typing as t

from graywsgi.errors import ConfigurationError

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["Network"]

Network = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_PROXY_FIX_ORIG = "werkzeug.proxy_fix.orig"
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# Longest textual IP address worth parsing (IPv6 with an IPv4 tail and a
# zone id); anything longer is not an address.
_MAX_ADDRESS_LENGTH = 64


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
