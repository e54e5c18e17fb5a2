"""Tests of graywsgi.httputil.proxy_url: the upstream base URL."""

from __future__ import annotations

import pytest

from graywsgi.httputil.proxy import UpstreamProxy


@pytest.mark.parametrize(
    "base_url, scheme, host, port, prefix, label, host_header",
    [
        pytest.param("http://example.com", "http", "example.com", 80, "", "example.com:80", "example.com", id="http default port"),
        pytest.param("https://example.com/", "https", "example.com", 443, "", "example.com:443", "example.com", id="https default port"),
        pytest.param("http://Example.COM:8080/api/v1/", "http", "example.com", 8080, "/api/v1", "example.com:8080", "example.com:8080", id="port and prefix"),
        pytest.param("http://example.com:80/x", "http", "example.com", 80, "/x", "example.com:80", "example.com", id="explicit default port"),
        pytest.param("http://[::1]:9000/x", "http", "::1", 9000, "/x", "[::1]:9000", "[::1]:9000", id="IPv6"),
        pytest.param("HTTPS://10.0.0.9:65535", "https", "10.0.0.9", 65535, "", "10.0.0.9:65535", "10.0.0.9:65535", id="IPv4, highest port"),
    ],
)  # fmt: skip
def test_valid_base_urls(
    base_url: str, scheme: str, host: str, port: int, prefix: str, label: str, host_header: str
) -> None:
    proxy = UpstreamProxy(base_url)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.prefix) == (scheme, host, port, prefix)
    assert (proxy.label, proxy.host_header) == (label, host_header)
