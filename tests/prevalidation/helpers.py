"""The test documents and a recording application shared by the tests of graywsgi/prevalidation/."""

from __future__ import annotations

import hashlib
import json
import threading
import typing as t
from pathlib import Path

from werkzeug.wrappers import Response

from graywsgi import Extraction, get_current
from graywsgi.prevalidation.layer import PreValidation
from tests.conftest import BufferedClient

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"
ORDERS = DATA / "orders-3.1.yaml"

GRAY = {"X-Version": "2.1.0"}  # a gray request (and inside the ^2 range)


class EchoApp:
    """Answers with what it received: the body's length and hash, CONTENT_LENGTH."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []
        self.environs: list[WSGIEnvironment] = []
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        assert get_current() is not None
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = b""
        with self.lock:
            self.calls += 1
            self.bodies.append(body)
            self.environs.append(environ)
        answer = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "content_length": length}
        return Response(json.dumps(answer), content_type="application/json")(environ, start_response)


def client_for(middleware: PreValidation, app: EchoApp | None = None) -> tuple[BufferedClient, EchoApp]:
    echo = app or EchoApp()
    middleware.app = echo
    return BufferedClient(Extraction(middleware)), echo


def triples(response: t.Any) -> list[tuple[str, str, str | None]]:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    return [(e["where"], e["expected"], e["received"]) for e in problem["errors"]]


def app(environ: t.Any, start_response: t.Any) -> t.Iterable[bytes]:  # pragma: no cover - never called
    raise AssertionError
