"""
Upstream base URL
=================

The base URL an :class:`~graywsgi.httputil.proxy.UpstreamProxy` forwards to:
``http://host[:port][/prefix]`` or ``https://...``, ASCII, with no
credentials (they would end up in logs), query or fragment. It is checked
when the proxy is built; a :class:`~graywsgi.errors.ConfigurationError`
names the URL and the problem (see "Validation" in
:mod:`graywsgi.httputil.proxy`). Its siblings:
:mod:`graywsgi.httputil.proxy_headers`,
:mod:`graywsgi.httputil.proxy_request` and
:mod:`graywsgi.httputil.proxy_response`.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from graywsgi.errors import ConfigurationError

__all__: list[str] = []

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")


def _parse_base_url(base_url: str) -> tuple[str, str, int, str]:
    """Validate ``base_url``; return scheme, host, port and path prefix."""

    def problem(message: str) -> ConfigurationError:
        return ConfigurationError(f"upstream URL {base_url!r}: {message}")

    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError(f"base_url must be a non-empty str, got {base_url!r}")
    if not base_url.isascii():
        raise problem("it must be ASCII (write an international host name in its xn-- form)")
    if any(ch <= " " or ch == "\x7f" for ch in base_url):
        raise problem("it contains a space or a control character")
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:
        raise problem(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise problem(f"the scheme must be http or https, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise problem("credentials in the URL are not supported (they would be logged)")
    if "?" in base_url or "#" in base_url:
        raise problem("a base URL has no query or fragment")
    host = parts.hostname or ""
    if not host:
        raise problem("it has no host")
    if ":" in host or parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise problem(f"{host!r} is not an IPv6 address") from None
    elif _HOSTNAME.fullmatch(host) is None:
        raise problem(f"{host!r} is not a valid host name")
    try:
        port = parts.port
    except ValueError:
        raise problem("the port must be a number from 1 to 65535") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise problem("the port must be a number from 1 to 65535")
        port = _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise problem("the port must be a number from 1 to 65535")
    return scheme, host, port, parts.path.rstrip("/")
