"""The request body (graywsgi/prevalidation/body.py): reading it once, handing it on, parsing it, 400 and 413."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import threading
import tracemalloc
import typing as t

import pytest
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

from graywsgi import Extraction
from graywsgi.prevalidation.layer import DEFAULT_MAX_BODY, PreValidation
from tests.prevalidation.helpers import GRAY, ORDERS, EchoApp, client_for, triples

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Answer(t.NamedTuple):
    status_code: int
    headers: t.Any
    data: bytes

    @property
    def json(self) -> t.Any:
        return json.loads(self.data)


def call(middleware: PreValidation, environ: WSGIEnvironment) -> Answer:
    """Run the chain on an environ exactly as given (the test client would rebuild it)."""
    app_iter, status, headers = run_wsgi_app(Extraction(middleware), environ, buffered=False)
    try:
        data = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return Answer(int(status.split()[0]), headers, data)


def json_of_size(size: int) -> bytes:
    """A valid order body of exactly ``size`` bytes (padding in a string field)."""
    head = b'{"customer": {"email": "a@b.io"}, "items": [{"qty": 1}], "pad": "'
    tail = b'"}'
    assert size >= len(head) + len(tail)
    return head + b"p" * (size - len(head) - len(tail)) + tail


def form_of_size(size: int) -> bytes:
    head = b"priority=3&note=ok&extra="
    return head + b"%FF" * ((size - len(head)) // 3) + b"z" * ((size - len(head)) % 3)


SIZES = [pytest.param(n, id=f"{n} bytes") for n in (100, 1023, 65_535, 65_536, 65_537, 300_001, DEFAULT_MAX_BODY)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["json", "form"])
def test_the_application_gets_the_same_body_with_content_length(orders: PreValidation, size: int, kind: str) -> None:
    client, app = client_for(orders)
    if kind == "json":
        body, url, method, content_type = json_of_size(size), "/orders", "POST", "application/json"
    else:
        body, url, method, content_type = form_of_size(size), "/orders/7", "PATCH", "application/x-www-form-urlencoded"
    assert len(body) == size
    response = client.open(url, method=method, data=body, content_type=content_type, headers=GRAY)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert app.bodies == [body]
    assert response.json["content_length"] == str(size)
    environ = app.environs[0]
    assert isinstance(environ["wsgi.input"], io.BytesIO)


def test_a_terminated_input_without_content_length_is_read_to_the_end(orders: PreValidation) -> None:
    client, app = client_for(orders)
    body = json_of_size(70_000)
    builder = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json")
    environ = builder.get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    response = call(orders, environ)
    assert response.status_code == 200
    assert app.bodies == [body]
    assert response.json["content_length"] == "70000"


NON_UTF8 = [
    pytest.param(
        "PATCH", "/orders/7", "application/x-www-form-urlencoded", b"priority=1&extra=\xff\xfe\x00\x80latin\xe9", id="raw form bytes"
    ),
    pytest.param(
        "PUT", "/orders/7/items/3", "multipart/form-data; boundary=XyZ",
        b"--XyZ\r\nContent-Disposition: form-data; name=\"qty\"\r\n\r\n2\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\xd8\xff\xe0\r\n\x80\x81"
        + bytes(range(256)) + b"\r\n--XyZ--\r\n",
        id="binary multipart file",
    ),
    pytest.param(
        "POST", "/orders", "application/json",
        '{"customer": {"email": "zoë@exämple.de"}, "items": [{"qty": 2}], "note": "日本語 \\u00e9"}'.encode(),
        id="UTF-8 JSON",
    ),
]


@pytest.mark.parametrize("method, url, content_type, body", NON_UTF8)
def test_bodies_pass_byte_for_byte(orders: PreValidation, method: str, url: str, content_type: str, body: bytes) -> None:
    client, app = client_for(orders)
    response = client.open(url, method=method, data=body, content_type=content_type, headers=GRAY)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert app.bodies == [body]
    assert response.json["content_length"] == str(len(body))


BAD_BODIES = [
    pytest.param(b'{"customer": ', "application/json", "Expecting value: line 1 column 14 (char 13)", id="truncated JSON"),
    pytest.param(b"{'a': 1}", "application/json", "Expecting property name enclosed in double quotes", id="not JSON"),
    pytest.param(b'{"items": NaN}', "application/json", "NaN is not a JSON number", id="NaN"),
    pytest.param(b'{"e": "\xe9"}', "application/json", "invalid continuation byte", id="latin-1 JSON"),
    pytest.param(b"[" * 100_000, "application/json", "nested too deeply", id="deep nesting"),
    pytest.param(b"<order/>", "application/xml", "not application/xml", id="undeclared media type"),
    pytest.param(b"email=a@b.io", "", "not (no Content-Type)", id="no content type"),
    pytest.param(b"--b\r\nbroken", "multipart/form-data; boundary=b", "not valid multipart", id="multipart form not declared"),
]


@pytest.mark.parametrize("body, content_type, reason", BAD_BODIES)
def test_an_unreadable_body_is_a_400_naming_why(orders: PreValidation, body: bytes, content_type: str, reason: str) -> None:
    client, app = client_for(orders)
    response = client.post("/orders", data=body, content_type=content_type or None, headers=GRAY)
    assert response.status_code == 400, response.get_data(as_text=True)
    problem = response.json
    detail = problem["detail"]
    if "multipart" in reason:  # POST /orders declares JSON and urlencoded forms only
        assert "takes a body of type application/json or application/x-www-form-urlencoded, not multipart/form-data" in detail
    else:
        assert reason in detail
    assert problem["errors"][0]["where"] == "body"
    assert app.calls == 0


def test_invalid_multipart_is_a_400() -> None:
    client, app = client_for(PreValidation(EchoApp(), openapi=ORDERS))
    response = client.put(
        "/orders/7/items/3", data=b"--b\r\nno headers end", content_type="multipart/form-data; boundary=b", headers=GRAY
    )
    assert response.status_code == 400
    assert response.json["detail"].startswith("The request body is not valid multipart/form-data")
    assert app.calls == 0


def test_an_empty_body_means_absent_fields(orders: PreValidation) -> None:
    client, app = client_for(orders)
    response = client.post("/orders", data=b"", content_type="application/json", headers=GRAY)
    assert triples(response) == [("body#/customer/email", "present", None)]
    assert client.patch("/orders/7", data=b"", content_type="application/json", headers=GRAY).status_code == 200
    assert app.bodies == [b""]


def test_a_declared_length_past_the_limit_is_413_without_reading() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=1000)
    client, app = client_for(middleware)

    class Untouchable(io.BytesIO):
        def read(self, *args: t.Any) -> bytes:
            raise AssertionError("the body was read")

    builder = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json")
    environ = builder.get_environ()
    environ["wsgi.input"] = Untouchable()
    environ["CONTENT_LENGTH"] = "1001"
    response = call(middleware, environ)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "larger than 1000 bytes" in response.json["detail"]
    assert app.calls == 0
    # at the limit exactly, it passes
    assert client.post("/orders", data=json_of_size(1000), content_type="application/json", headers=GRAY).status_code == 200


def test_a_terminated_body_past_the_limit_is_413() -> None:
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=100_000)
    client, app = client_for(middleware)
    for size, status in ((100_000, 200), (100_001, 413)):
        environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
        environ["wsgi.input"] = io.BytesIO(json_of_size(size))
        environ["wsgi.input_terminated"] = True
        environ.pop("CONTENT_LENGTH", None)
        assert call(middleware, environ).status_code == status
    assert app.calls == 1


CONTENT_LENGTH_PROBLEMS = [
    pytest.param("12x", b"{}", "The Content-Length header is not a number.", id="not a number"),
    pytest.param("200", b'{"customer": {}}', "The request body ended after 16 of 200 bytes.", id="shorter than declared"),
]


@pytest.mark.parametrize("length, body, detail", CONTENT_LENGTH_PROBLEMS)
def test_content_length_problems_are_400(orders: PreValidation, length: str, body: bytes, detail: str) -> None:
    client, app = client_for(orders)
    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = length
    response = call(orders, environ)
    assert response.status_code == 400
    assert response.json["detail"] == detail
    assert app.calls == 0


def test_a_failing_input_stream_is_a_400(orders: PreValidation) -> None:
    client, app = client_for(orders)

    class Broken(io.RawIOBase):
        def read(self, *args: t.Any) -> bytes:
            raise OSError("connection reset by peer")

    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = Broken()
    environ["CONTENT_LENGTH"] = "10"
    response = call(orders, environ)
    assert response.status_code == 400
    assert response.json["detail"] == "The request body could not be read: connection reset by peer"
    assert app.calls == 0


NOT_READ = [
    pytest.param("POST", "/orders", {}, id="non-gray request"),
    pytest.param("GET", "/orders?limit=5", GRAY, id="gray, only query rules apply"),
    pytest.param("POST", "/orders/7/items", GRAY, id="gray, no operation"),
    pytest.param("DELETE", "/orders/7", GRAY, id="gray, operation without rules"),
]


@pytest.mark.parametrize("method, url, headers", NOT_READ)
def test_the_body_is_not_read_when_no_applicable_rule_needs_it(
    orders: PreValidation, method: str, url: str, headers: dict[str, str]
) -> None:
    client, app = client_for(orders)
    original = io.BytesIO(b'{"customer": 1}')
    environ = EnvironBuilder(url, method=method, headers=headers, content_type="application/json").get_environ()
    environ["wsgi.input"] = original
    environ["CONTENT_LENGTH"] = "15"
    response = call(orders, environ)
    assert response.status_code == 200
    assert app.environs[0]["wsgi.input"] is original
    assert app.bodies == [b'{"customer": 1}']


def test_the_body_is_buffered_once() -> None:
    """One copy of the body is held: the parser and the new stream share it."""
    size = 4 * 1024 * 1024
    middleware = PreValidation(EchoApp(), openapi=ORDERS, max_body=size)
    body = b'{"customer": {"email": "a@b.io"}, "items": [{"qty": 1}]}'
    body += b" " * (size - len(body))  # whitespace: parsing it makes no objects
    peaks: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        peaks.append(tracemalloc.get_traced_memory()[1])
        start_response("204 No Content", [])
        return []

    middleware.app = app
    environ = EnvironBuilder("/orders", method="POST", headers=GRAY, content_type="application/json").get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(size)
    extraction = Extraction(middleware)
    tracemalloc.start()
    try:
        result = extraction(environ, lambda status, headers, exc_info=None: lambda data: None)
        close = getattr(result, "close", None)
        if close is not None:
            close()
    finally:
        tracemalloc.stop()
    # Reading all of a BytesIO hands out its own buffer, so the one new
    # allocation of body size is the text json.loads decodes; a second
    # buffer of the body (a copy for the new wsgi.input) would make it 2x.
    assert peaks and peaks[0] < 1.5 * size, peaks[0] / size
    assert environ["wsgi.input"].getvalue() == body


# --- a real server: chunked bodies ---------------------------------------------------


@pytest.fixture
def served() -> t.Iterator[tuple[int, EchoApp]]:
    app = EchoApp()
    middleware = PreValidation(app, openapi=ORDERS, max_body=200_000)
    server = make_server("127.0.0.1", 0, Extraction(middleware), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.port, app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send(port: int, body: bytes, *, chunked: bool, content_type: str = "application/json") -> tuple[int, dict[str, t.Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type, **GRAY}
        if chunked:
            chunks = (body[i:i + 7_000] for i in range(0, len(body), 7_000))
            conn.request("POST", "/orders", body=chunks, headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/orders", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [80, 6_999, 7_000, 65_537, 200_000])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_over_http_the_application_gets_the_same_body(served: tuple[int, EchoApp], size: int, chunked: bool) -> None:
    port, app = served
    body = json_of_size(size)
    status, answer = send(port, body, chunked=chunked)
    assert status == 200, answer
    assert answer["length"] == size
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["content_length"] == str(size)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_over_http_past_the_limit_is_413_and_invalid_is_400(served: tuple[int, EchoApp], chunked: bool) -> None:
    port, app = served
    status, answer = send(port, json_of_size(200_001), chunked=chunked)
    assert status == 413 and answer["status"] == 413
    status, answer = send(port, b'{"customer": {"email": "x"}, "items": [{"qty": 99}]}', chunked=chunked)
    assert status == 400
    assert [e["where"] for e in answer["errors"]] == ["body#/customer/email", "body#/items/0/qty"]
    status, answer = send(port, b"priority=1&note=x&coupon=ABCDEF&customer=c", chunked=chunked,
                          content_type="application/x-www-form-urlencoded")
    assert status == 400  # the JSON-only required email is absent in the form
    assert app.calls == 0
