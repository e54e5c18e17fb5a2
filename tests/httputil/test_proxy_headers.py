"""Tests of graywsgi.httputil.proxy_headers: hop-by-hop headers are dropped both ways."""

from __future__ import annotations

import json
import typing as t

from graywsgi.httputil.proxy import UpstreamProxy
from tests.httputil.conftest import Server, TrackedHandler, fetch

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def test_hop_by_hop_request_headers_are_dropped(front: Server) -> None:
    hop = {
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "only for the first hop",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "Proxy-Connection": "keep-alive",
        "TE": "trailers",
        "Trailer": "X-Checksum",
        "Upgrade": "h2c",
        "Expect": "100-continue",
    }
    response, data = fetch(front, "POST", "/", body=b"body", headers={**hop, "X-Kept": "yes"})
    assert response.status == 200
    seen = json.loads(data)["headers"]
    assert seen["X-Kept"] == "yes"
    for name in hop:
        assert name.title() not in seen, name
    assert "Transfer-Encoding" not in seen


def test_hop_by_hop_response_headers_are_dropped(
    start_server: t.Callable[..., Server], make_proxy: t.Callable[..., UpstreamProxy]
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response(
            "201 Created",
            [
                ("Content-Length", "2"),
                ("Connection", "X-Resp-Hop"),
                ("X-Resp-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("Trailer", "X-Checksum"),
                ("Upgrade", "h2c"),
                ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("X-Kept", "yes"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ],
        )
        return [b"ok"]

    upstream = start_server(app)
    front = start_server(make_proxy(upstream.url), handler=TrackedHandler)
    response, data = fetch(front, "GET", "/")
    assert (response.status, response.reason, data) == (201, "Created", b"ok")
    assert response.getheader("X-Kept") == "yes"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    for name in ("X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
        assert response.getheader(name) is None, name
    assert response.headers.get_all("Connection") == ["close"]  # the front server's own
    dates = response.headers.get_all("Date")
    assert dates is not None and len(dates) == 1 and "1970" not in dates[0]
